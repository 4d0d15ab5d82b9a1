"""Copy-paste: labelled objects of one source pasted into other sources' photos where reviewers
confirmed their class absent (issue 25).

Why: garbage-cn is the only source that labels garbage, so the model saw garbage only against
garbage-cn's streets, and every other source's photo teaches garbage only as background (where
reviews confirm it absent). Pasting real garbage-cn piles into traffic-camera frames, bike lots,
facades and Indian streets shows the class in those scenes too, at the sizes a far camera sees.
The loss mask stays right because a photo receives a class only where reviews confirmed that class
absent (or labelled it with `real` boxes, which are kept): no unlabelled object of it can stand
there. The output labels only the pasted classes; the host's own classes are masked on the copy.

Output: an ultralytics dataset (train only: the val splits stay the frozen holdout) that a mix
lists as one more source: images/train, labels/train, data.yaml, pasted.jsonl (each copy's host
photo with its sha256, and each pasted object's donor photo and boxes), contact_sheet.jpg.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vision.core.files import file_sha256
from vision.core.imageio import read_bgr, write_bgr
from vision.core.sheets import SheetItem, write_pages
from vision.core.taxonomy import Taxonomy
from vision.data.annotations.coords import from_yolo, to_yolo
from vision.data.datamix import (
    Source,
    class_names,
    image_files,
    label_path,
    licence_credits,
    load_mix,
    read_data_yaml,
    source_reviews,
    split_dirs,
)

MIN_SIDE = 24  # px: a donor box smaller than this is too small to cut out and scale
MAX_AREA = 0.4  # share of the donor photo: larger boxes are whole scenes, not objects to move
MARGIN = 0.15  # context cut around a donor box on each side, faded into the host photo
HEIGHTS = (0.06, 0.35)  # a pasted object's height as a share of the host photo's: far to near
GROUND = 0.45  # a pasted object's foot lies below this share of the photo's height
TRIES = 30  # placements tried per object before giving up on it
MAX_ENLARGE = 1.25  # a cut-out is shrunk freely but enlarged at most this much: blown-up pixels look pasted


@dataclass(frozen=True)
class Donor:
    """One labelled object that can be cut out: its photo, class and pixel box."""

    image: Path
    cls: str
    xyxy: tuple[float, float, float, float]


def _box_rows(image: Path, width: int, height: int, names: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """The YOLO boxes of an image as (class name, pixel xyxy)."""
    label = label_path(image)
    rows = []
    for line in (label.read_text(encoding="utf-8") if label.exists() else "").splitlines():
        fields = line.split()
        if len(fields) >= 5 and 0 <= int(float(fields[0])) < len(names):
            cx, cy, w, h = (float(v) for v in fields[1:5])
            xyxy = from_yolo(cx, cy, w, h, width, height)
            rows.append((names[int(float(fields[0]))], np.asarray(xyxy, dtype=np.float64)))
    return rows


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / max(smaller, 1e-9))


def donors(source: Source, classes: Sequence[str], taxonomy: Taxonomy) -> list[Donor]:
    """Train boxes of `classes` in `source` worth cutting out: big enough, not whole scenes, and
    apart from the photo's other boxes (whose pieces would come along unlabelled)."""
    data = read_data_yaml(source.data_yaml)
    names = class_names(data)
    found = []
    for folder in split_dirs(source.data_yaml, data, "train"):
        for image in image_files(folder):
            photo = read_bgr(image)
            if photo is None:
                continue
            height, width = photo.shape[:2]
            rows = [(taxonomy.resolve(n), xyxy) for n, xyxy in _box_rows(image, width, height, names)]
            for index, (cls, xyxy) in enumerate(rows):
                if cls is None or cls.name not in classes:
                    continue
                w, h = xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]
                if min(w, h) < MIN_SIDE or w * h > MAX_AREA * width * height:
                    continue
                cut = _with_margin(xyxy, width, height)
                if any(_overlap(cut, other) > 0.05 for j, (_, other) in enumerate(rows) if j != index):
                    continue
                found.append(Donor(image, cls.name, _tuple(xyxy)))
    return found


def _with_margin(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    w, h = xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]
    return np.array(
        [
            max(0.0, xyxy[0] - MARGIN * w),
            max(0.0, xyxy[1] - MARGIN * h),
            min(float(width), xyxy[2] + MARGIN * w),
            min(float(height), xyxy[3] + MARGIN * h),
        ]
    )


def _tuple(xyxy: np.ndarray) -> tuple[float, float, float, float]:
    return (float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))


@dataclass(frozen=True)
class Host:
    """A train photo of another source where reviews settle every pasted class: confirmed absent,
    or labelled by `real` boxes (kept as labels of the copy)."""

    source: str
    image: Path
    sha256: str
    boxes: tuple[tuple[str, tuple[float, float, float, float]], ...]  # the review's pseudo-labels
    own: tuple[tuple[float, float, float, float], ...]  # the source's own labelled boxes: kept clear


def hosts(sources: Sequence[Source], classes: Sequence[str], taxonomy: Taxonomy) -> list[Host]:
    """Train photos of `sources` whose reviews (for the photo as it is now) settle all `classes`."""
    found = []
    for source in sources:
        reviews = source_reviews(source, taxonomy)
        if not reviews:
            continue
        data = read_data_yaml(source.data_yaml)
        names = class_names(data)
        for folder in split_dirs(source.data_yaml, data, "train"):
            for image in image_files(folder):
                review = reviews.get(image.name)
                if review is None or not set(classes) <= review.labelled:
                    continue
                sha256 = file_sha256(image)
                if sha256 != review.sha256:
                    continue  # changed since it was reviewed: the decision no longer holds
                own = tuple(_tuple(xyxy) for _, xyxy in _box_rows(image, review.width, review.height, names))
                kept = tuple((cls, xyxy) for cls, xyxy in review.boxes if cls in classes)
                found.append(Host(source.name, image, sha256, kept, own))
    return found


def _alpha(height: int, width: int, inner: np.ndarray) -> np.ndarray:
    """1 over the object's box (`inner`, xyxy in the patch), fading to 0 across the context margin."""
    x1, y1, x2, y2 = (int(v) for v in inner.round())
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    fade_x = np.minimum(
        np.clip((xs + 1) / max(x1, 1), 0, 1), np.clip((width - xs) / max(width - x2, 1), 0, 1)
    )
    fade_y = np.minimum(
        np.clip((ys + 1) / max(y1, 1), 0, 1), np.clip((height - ys) / max(height - y2, 1), 0, 1)
    )
    return np.minimum(fade_x, fade_y)[..., None]


def paste_one(
    canvas: np.ndarray,
    donor_photo: np.ndarray,
    donor: Donor,
    taken: list[np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray | None:
    """Paste the donor's object into `canvas` (changed in place) clear of the `taken` boxes, at a
    random far-to-near size on the lower part of the photo, its light matched to the spot; the
    object's new pixel box, or None when no spot was found."""
    host_h, host_w = canvas.shape[:2]
    box = np.asarray(donor.xyxy)
    cut = _with_margin(box, donor_photo.shape[1], donor_photo.shape[0]).round().astype(int)
    for _ in range(TRIES):
        scale = rng.uniform(*HEIGHTS) * host_h / (box[3] - box[1])
        scale = min(scale, 0.5 * host_w / (box[2] - box[0]), MAX_ENLARGE)
        cut_w, cut_h = round((cut[2] - cut[0]) * scale), round((cut[3] - cut[1]) * scale)
        if min(cut_w, cut_h) < 8 or cut_w >= host_w or cut_h >= host_h:
            return None
        left = int(rng.integers(0, host_w - cut_w + 1))
        foot = int(rng.integers(min(host_h, int(GROUND * host_h) + cut_h), host_h + 1))
        top = foot - cut_h
        inner = (box - np.array([cut[0], cut[1], cut[0], cut[1]])) * scale
        placed = inner + np.array([left, top, left, top])
        if any(_overlap(placed, other) > 0.2 for other in taken):
            continue
        patch = cv2.resize(
            donor_photo[cut[1] : cut[3], cut[0] : cut[2]], (cut_w, cut_h), interpolation=cv2.INTER_AREA
        )
        spot = canvas[top : top + cut_h, left : left + cut_w]
        gain = np.clip((spot.mean() + 1) / (patch.mean() + 1), 0.5, 1.5) ** 0.7  # the spot's light
        alpha = _alpha(cut_h, cut_w, inner)
        blended = alpha * np.clip(patch * gain, 0, 255) + (1 - alpha) * spot
        canvas[top : top + cut_h, left : left + cut_w] = blended.astype(np.uint8)
        return np.clip(placed, 0, [host_w, host_h, host_w, host_h])
    return None


@dataclass(frozen=True)
class PasteSummary:
    out: str
    donors: int
    hosts: int
    images: int
    objects: dict[str, int]


def paste_objects(
    mix_yaml: Path,
    donor_source: str,
    classes: Sequence[str],
    out: Path,
    taxonomy: Taxonomy,
    *,
    per_photo: int = 2,
    seed: int = 0,
    overwrite: bool = False,
) -> PasteSummary:
    """Paste 1..per_photo objects of `classes` from the mix's `donor_source` into each host photo
    of its other sources (see `hosts`) and write the dataset to `out` (module docstring)."""
    resolved = {name: taxonomy.resolve(name) for name in classes}
    unknown = [name for name, cls in resolved.items() if cls is None]
    if unknown:
        raise ValueError(f"{', '.join(map(repr, unknown))}: not a class of the taxonomy")
    classes = [cls.name for cls in resolved.values() if cls is not None]
    _, sources = load_mix(mix_yaml, taxonomy)
    by_name = {s.name: s for s in sources}
    if donor_source not in by_name:
        raise ValueError(f"{mix_yaml} has no source named {donor_source!r} ({', '.join(by_name)})")
    donor = by_name[donor_source]
    unlabelled = [c for c in classes if taxonomy.names.index(c) not in donor.labelled]
    if unlabelled:
        raise ValueError(f"{donor_source} does not label {', '.join(unlabelled)}: nothing to cut out")
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists (--overwrite replaces it)")
        shutil.rmtree(out)
    cutouts = donors(donor, classes, taxonomy)
    places = hosts([s for s in sources if s.name != donor_source], classes, taxonomy)
    if not cutouts or not places:
        raise ValueError(
            f"nothing to paste: {len(cutouts)} objects to cut out, {len(places)} photos to paste into"
        )
    rng = np.random.default_rng(seed)
    (out / "images" / "train").mkdir(parents=True)
    (out / "labels" / "train").mkdir(parents=True)
    counts = dict.fromkeys(classes, 0)
    records: list[dict[str, object]] = []
    sheet: list[SheetItem] = []
    for host in tqdm(places, desc="pasting", unit="photo", file=sys.stderr):
        canvas = read_bgr(host.image)
        if canvas is None:
            continue
        height, width = canvas.shape[:2]
        taken = [np.asarray(b) for b in host.own] + [np.asarray(b) for _, b in host.boxes]
        rows = [(cls, np.asarray(xyxy)) for cls, xyxy in host.boxes]
        pasted = []
        for _ in range(int(rng.integers(1, per_photo + 1))):
            chosen = cutouts[int(rng.integers(len(cutouts)))]
            donor_photo = read_bgr(chosen.image)
            placed = None if donor_photo is None else paste_one(canvas, donor_photo, chosen, taken, rng)
            if placed is None:
                continue
            taken.append(placed)
            rows.append((chosen.cls, placed))
            counts[chosen.cls] += 1
            pasted.append(
                {
                    "class": chosen.cls,
                    "donor": chosen.image.name,
                    "donor_xyxy": list(chosen.xyxy),
                    "xyxy": [round(float(v), 1) for v in placed],
                }
            )
        if not pasted:
            continue
        name = f"{host.source}__{host.image.stem}.jpg"
        write_bgr(out / "images" / "train" / name, canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
        (out / "labels" / "train" / f"{Path(name).stem}.txt").write_text(
            "".join(f"{classes.index(cls)} {to_yolo(_tuple(xyxy), width, height)}\n" for cls, xyxy in rows),
            encoding="utf-8",
        )
        records.append(
            {
                "image": f"images/train/{name}",
                "host": f"{host.source}/{host.image.name}",
                "host_sha256": host.sha256,
                "pasted": pasted,
            }
        )
        sheet += [
            SheetItem(
                str(len(sheet) + n),
                "pasted",
                out / "images" / "train" / name,
                _tuple(np.asarray(p["xyxy"])),
                f"{p['class']} from {p['donor'][:24]}",
            )
            for n, p in enumerate(pasted, 1)
        ]
    _write_data_yaml(out, classes, donor, [by_name[h] for h in sorted({h.source for h in places})])
    with open(out / "pasted.jsonl", "w", encoding="utf-8") as manifest:
        manifest.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_pages(sheet[:24], out / "sheets")
    return PasteSummary(str(out), len(cutouts), len(places), len(records), counts)


def _write_data_yaml(
    out: Path, classes: Sequence[str], donor: Source, host_sources: Sequence[Source]
) -> None:
    """data.yaml with a `# Source:` block naming every source's licence (the model card reads it)."""
    credits = "; ".join(
        f"{s.name}: {licence_credits(s.data_yaml).removeprefix('Source:').strip() or 'see its data.yaml'}"
        for s in [donor, *host_sources]
    )
    lines = [
        f"# {', '.join(classes)} objects of {donor.name} pasted into reviewed photos of "
        f"{', '.join(s.name for s in host_sources)} (vision/data/paste.py); train only.",
        f"# Source: {credits}",
        f"path: {out.resolve()}",
        "train: images/train",
        "names:",
        *(f"  {i}: {name}" for i, name in enumerate(classes)),
    ]
    (out / "data.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
