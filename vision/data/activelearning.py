"""`streetorder data queue`: the images most worth a person's labelling time, pre-annotated.

Annotators' time is the scarce resource, so the queue ranks what the case workflow and the model
already know, best first:

1. AI findings a person **rejected** (the model saw something that is not there) or **corrected**
   (right place, wrong class): the model's own mistakes;
2. class-free **occupancy** findings (`source: occupancy`, issue 12) a person confirmed or
   corrected: something real stood there that no class names yet; the crop goes with the task;
3. camera cases whose **frames disagree** (the class changes from frame to frame, or the score
   swings): the model is unsure of a thing it saw many times;
4. **uncertain** photos of scans and uploads: boxes scored near their class's threshold.

Images already in a dataset (or in the frozen holdout) are skipped. The queue is written as
Label Studio tasks with the model's boxes as predictions (percent coordinates, scores, model
version) and as a CVAT "Ultralytics YOLO" zip; images are copied upright beside them.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from vision.core.boxes import Box
from vision.core.files import file_sha256
from vision.core.imageio import ImageError, read_photo, write_bgr
from vision.core.phash import KnownImages, LookIndex
from vision.core.taxonomy import Taxonomy
from vision.data.annotations.dataset import Dataset
from vision.data.annotations.records import Label
from vision.data.annotations.writers import QueuedImage, write_labelstudio_tasks, write_yolo_zip

OCCUPANCY = "occupancy"  # the class and source of class-free findings (serve/cases/cameras.py)
PRIORITY = {"rejected": 1.0, "corrected": 1.0, "occupancy": 0.9, "disagreement": 0.5, "uncertain": 0.4}
UNCERTAIN_BAND = 0.2  # scores within this of a class's threshold count as uncertain
DOCUMENT_ROOT_HELP = "Label Studio's LOCAL_FILES_DOCUMENT_ROOT (task URLs are relative to it; default: --out)"


@dataclass(frozen=True)
class Candidate:
    """An image that may go into the queue, and why."""

    path: Path
    reason: str
    priority: float
    boxes: tuple[Label, ...]  # what the model saw (pixel boxes of the upright image, scores)
    model_version: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    phash: str | None = None  # vision.core.phash as the database keeps it (none for camera frames)


def uncertainty(boxes: Iterable[Label], taxonomy: Taxonomy) -> float:
    """1 for a box scored exactly at its class's threshold, 0 beyond UNCERTAIN_BAND from it."""
    thresholds = {c.name: c.min_confidence for c in taxonomy.classes}
    closeness = [
        1 - abs((box.confidence or 0) - thresholds[box.name]) / UNCERTAIN_BAND
        for box in boxes
        if box.name in thresholds
    ]
    return max([0.0, *closeness])


def disagreement(frames: list[tuple[str, float]]) -> float:
    """How much the frames of one camera case disagree: the share of frames whose class is not the
    most common one, plus the spread of scores (both 0 when every frame agrees)."""
    if len(frames) < 2:
        return 0.0
    classes = Counter(name for name, _ in frames)
    minority = 1 - classes.most_common(1)[0][1] / len(frames)
    scores = [score for _, score in frames]
    return min(1.0, minority + (max(scores) - min(scores)))


def labels_of(boxes: Iterable[Box], taxonomy: Taxonomy) -> tuple[Label, ...]:
    """Stored boxes (vision.core.boxes) of taxonomy classes as labels."""
    names = set(taxonomy.names)
    return tuple(Label(box.class_name, box.xyxy, box.confidence) for box in boxes if box.class_name in names)


def class_of_event(event: str, taxonomy: Taxonomy) -> str | None:
    """The one detector class that becomes `event`, if exactly one does (a corrected finding's class)."""
    classes = [c.name for c in taxonomy.classes if c.event == event]
    return classes[0] if len(classes) == 1 else None


def resolve_path(path: str, base: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base / candidate


def select_queue(
    candidates: Iterable[Candidate],
    limit: int,
    skip: KnownImages,
    left_out: dict[str, str] | None = None,
) -> list[tuple[Candidate, str]]:
    """Best first, one entry per image (its strongest reason; the others noted), skipping known images.

    An image several candidates name (a frame two occupancy cases share) keeps every box and
    region they bring, so no case's region is lost. A copy of a queued image by its look (saved
    again, resized, turned by its EXIF: vision.core.phash) is no second task: its reasons join the
    stronger one's task and its path is noted under `copies` (its boxes are in another file's
    pixels, so they stay out). Images of `skip` are left out, a frozen-holdout photo also by its look,
    each noted in `left_out` (sha256 -> why): a queue of holdout photos was "nothing to label" unsaid."""
    left_out = {} if left_out is None else left_out
    best: dict[str, tuple[Candidate, list[str]]] = {}
    for candidate in candidates:
        try:
            sha = file_sha256(candidate.path)
        except OSError as err:
            print(f"queue: {candidate.path}: skipped ({err.strerror or err})", file=sys.stderr)
            continue
        if sha in skip.by_sha256:
            left_out[sha] = skip.by_sha256[sha]
            continue
        held = best.get(sha)
        if held is None:
            best[sha] = (candidate, [candidate.reason])
        else:
            best[sha] = (merged(held[0], candidate), [*held[1], candidate.reason])
    ranked = sorted(best.items(), key=lambda item: -item[1][0].priority)
    chosen: list[tuple[Candidate, str, list[str], list[str]]] = []  # candidate, sha, reasons, copies
    chosen_looks = LookIndex()  # the chosen tasks' looks, each under its place in `chosen`
    for sha, (candidate, reasons) in ranked:
        if len(chosen) == limit:
            break
        look = candidate.phash
        if look is not None and (why := skip.why(sha, look)) is not None:
            left_out[sha] = why
            continue
        copied = sorted(int(place) for _, place in chosen_looks.near(look)) if look else []
        if copied:  # ranked best first: the task already chosen (the first, if several) is the stronger one
            original = chosen[copied[0]]
            original[2].extend(reasons)
            original[3].append(str(candidate.path))
        else:
            if look:
                chosen_looks.add(str(len(chosen)), look)
            chosen.append((candidate, sha, reasons, []))
    return [(noted(c, reasons, copies), sha) for c, sha, reasons, copies in chosen]


def noted(candidate: Candidate, reasons: list[str], copies: list[str]) -> Candidate:
    """The candidate with its reasons, strongest first, and the paths of its copies by look."""
    meta = {**candidate.meta, "reasons": [candidate.reason, *sorted(set(reasons) - {candidate.reason})]}
    if copies:
        meta["copies"] = " | ".join(copies)
    return replace(candidate, meta=meta)


def merged(held: Candidate, other: Candidate) -> Candidate:
    """Two candidates of one image as one: the stronger's reason and meta, both's boxes and regions."""
    stronger, weaker = (other, held) if other.priority > held.priority else (held, other)
    boxes = tuple(dict.fromkeys((*stronger.boxes, *weaker.boxes)))
    regions = [r for r in (stronger.meta.get("region"), weaker.meta.get("region")) if r]
    meta = {**stronger.meta, "region": " | ".join(dict.fromkeys(regions))} if regions else stronger.meta
    return replace(
        stronger,
        boxes=boxes,
        meta=meta,
        model_version=stronger.model_version or weaker.model_version,
        phash=stronger.phash or weaker.phash,
    )


def known_images(datasets: Iterable[str], datasets_dir: Path) -> KnownImages:
    """The images of these datasets, by bytes and by look: a labelled photo saved again or resized
    (a patrol photo sent twice, a camera's still frame) is not queued for labelling again."""
    known = KnownImages()
    for name in datasets:
        dataset = Dataset.open(name, datasets_dir)
        known.by_sha256.update(dict.fromkeys(dataset.images, f"in dataset {name}"))
        for look in dataset.looks().looks.values():
            known.add_look(look, f"a copy of an image in dataset {name}")
    return known


def write_queue(
    selected: list[tuple[Candidate, str]], out: Path, document_root: Path, taxonomy: Taxonomy
) -> list[QueuedImage]:
    """Copy the images upright into out/images (and crops into out/crops), then write the tasks
    and the CVAT zip."""
    images_dir, crops_dir = out / "images", out / "crops"
    images_dir.mkdir(parents=True, exist_ok=True)
    root = document_root.resolve()
    prefix = out.resolve().relative_to(root)
    queued: list[QueuedImage] = []
    for candidate, sha in tqdm(selected, desc="queue", file=sys.stderr, disable=len(selected) < 50):
        try:
            photo = read_photo(candidate.path)
        except ImageError as err:
            print(f"queue: {err}", file=sys.stderr)
            continue
        name = f"{sha[:16]}{candidate.path.suffix.lower() or '.jpg'}"
        target = images_dir / name
        if photo.meta.orientation == 1 and photo.format != "HEIF":
            shutil.copyfile(candidate.path, target)
        else:  # boxes are in the upright photo (give annotators that one, not the EXIF-rotated one);
            # browsers do not show HEIC, so the annotation tools get it as JPEG
            target = target.with_suffix(".jpg")
            write_bgr(target, photo.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        meta = {k: v for k, v in candidate.meta.items() if k not in ("crop_path", "reasons")}
        crop = candidate.meta.get("crop_path")
        if crop and Path(crop).is_file():
            crops_dir.mkdir(exist_ok=True)
            shutil.copyfile(crop, crops_dir / f"{sha[:16]}.jpg")
            meta["crop"] = local_files_url(prefix / "crops" / f"{sha[:16]}.jpg")
        meta["source_path"] = str(candidate.path)
        queued.append(
            QueuedImage(
                path=target,
                width=photo.width,
                height=photo.height,
                predictions=candidate.boxes,
                model_version=candidate.model_version if candidate.boxes else None,
                reasons=tuple(candidate.meta.get("reasons") or (candidate.reason,)),
                priority=candidate.priority,
                meta=meta,
            )
        )
    write_labelstudio_tasks(
        queued, out, lambda item: local_files_url(prefix / "images" / item.path.name), taxonomy
    )
    write_yolo_zip(queued, out / "cvat-yolo.zip", taxonomy.names, lambda item: item.path.name)
    return queued


def local_files_url(relative: Path) -> str:
    """Label Studio serves files under its document root at /data/local-files/?d=<relative path>."""
    return f"/data/local-files/?d={relative.as_posix()}"
