"""Reviewed negatives: a person's decision on each box a model proposes for a class a source does not label.

Each training source labels only its own classes, so the class loss of the others is masked on its
photos, and no traffic-camera frame ever teaches the model what is *not* garbage. A review fixes
that photo by photo. The current model runs over a source's photos and proposes boxes of classes
the source does not label (`propose`); a reviewer looks at contact sheets and decides each box:

- `false`: no object of that class there (and none elsewhere in the photo that the reviewer sees);
- `real`: the object is there, of that class, and the box fits it: it becomes a pseudo-label;
- `unsure`: anything else (a poor box over a real object, another object of the class left unboxed,
  a picture too small to tell).

A photo where the model proposed nothing of a class can be put to the reviewer whole
(`propose(whole_photos=True)`): one proposal whose box is the whole photo and whose confidence is 0,
decided like any other (`false`: none of that class anywhere in the photo). Box proposals only reach
photos a model already gets wrong; the whole photo asks about the ones it gets right, which are the
negatives a source contributes to the classes it does not label.

Per photo and class: all proposals `false` -> the class is confirmed absent; some `real` and the rest
`false` -> the class is labelled there by the `real` boxes; any `unsure` or undecided -> it stays
masked. Training then unmasks exactly those classes on exactly those photos (vision.data.datamix).

A review file (`datasets/reviews/<source>.jsonl`, versioned) holds one proposal per line:
    {"id": 1, "source": "traffic-cams", "split": "val", "image": "a.jpg", "sha256": "<of the file>",
     "width": 640, "height": 360, "class": "garbage", "xyxy": [x1, y1, x2, y2], "confidence": 0.41,
     "model": "street-v10@59e1119b1158", "proposed": "2026-12-05",
     "decision": "false" | "real" | "unsure" | null, "reviewer": "name" | null, "date": "2026-12-05" | null}
Boxes are pixels of the photo as stored; the photo's sha256 ties a decision to the exact picture.

Kept to numpy and the standard library at import (the mix build runs on a bare GPU host).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vision.core.taxonomy import Taxonomy
from vision.core.yamlfile import read_text

if TYPE_CHECKING:  # supervision is not on a bare GPU host, where the mix build reads review files
    from vision.core.detector import Detector

DECISIONS = ("false", "real", "unsure")
REVIEWS = "reviews"  # the review files' folder in the data folder (the data_dir setting)
DEFAULT_THRESHOLD = 0.25  # below every class's scan threshold: the review sees what a scan could file
SAME_BOX_IOU = 0.5  # a new proposal this close to one already in the file is not proposed again
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ReviewError(ValueError):
    """A review file or decision that cannot be used; the message names the file, line or box."""


@dataclass(frozen=True)
class Proposal:
    id: int
    source: str
    split: str
    image: str  # file name in the split's image folder
    sha256: str
    width: int
    height: int
    cls: str  # taxonomy class name ("class" in the file)
    xyxy: tuple[float, float, float, float]
    confidence: float
    model: str  # the model version that proposed it
    proposed: str  # ISO date
    decision: str | None = None
    reviewer: str | None = None
    date: str | None = None  # ISO date of the decision

    @property
    def whole_photo(self) -> bool:
        """A question about the whole photo (no box of the class was proposed there)."""
        return self.confidence == 0.0 and self.xyxy == (0.0, 0.0, float(self.width), float(self.height))

    def to_json(self) -> dict[str, Any]:
        """The file's line: fields in the order of the module docstring, the box to 0.1 px."""
        data = asdict(self)
        order = ("id", "source", "split", "image", "sha256", "width", "height", "cls", "xyxy")
        line = {("class" if key == "cls" else key): data.pop(key) for key in order}
        line["xyxy"] = [round(v, 1) for v in self.xyxy]
        return {**line, **data}


def _field(row: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ReviewError(f"{where}: '{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def parse_proposal(row: Any, taxonomy: Taxonomy, where: str) -> Proposal:
    """One line of a review file, checked field by field."""
    if not isinstance(row, dict):
        raise ReviewError(f"{where}: a JSON object expected")
    number = (int, float)
    width, height = _field(row, "width", int, where), _field(row, "height", int, where)
    xyxy = row.get("xyxy")
    if (
        not isinstance(xyxy, list)
        or len(xyxy) != 4
        or not all(isinstance(v, number) and not isinstance(v, bool) for v in xyxy)
    ):
        raise ReviewError(f"{where}: 'xyxy' must be 4 numbers (pixels), got {xyxy!r}")
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    if width <= 0 or height <= 0 or not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ReviewError(f"{where}: box {xyxy} is not inside the {width}x{height} photo")
    name = _field(row, "class", str, where)
    if taxonomy.resolve(name) is None or taxonomy.resolve(name).name != name:  # type: ignore[union-attr]
        raise ReviewError(f"{where}: 'class' {name!r} is not a taxonomy class ({', '.join(taxonomy.names)})")
    sha = _field(row, "sha256", str, where)
    if not _SHA256.match(sha):
        raise ReviewError(f"{where}: 'sha256' must be 64 lower-case hex digits")
    decision = row.get("decision")
    if decision is not None and decision not in DECISIONS:
        raise ReviewError(
            f"{where}: 'decision' must be one of {', '.join(DECISIONS)} or null, got {decision!r}"
        )
    for key in ("proposed", "date"):
        value = row.get(key)
        if (key == "proposed" or value is not None) and not (isinstance(value, str) and _DATE.match(value)):
            raise ReviewError(f"{where}: '{key}' must be a date YYYY-MM-DD, got {value!r}")
    if decision is not None and not (row.get("reviewer") and row.get("date")):
        raise ReviewError(f"{where}: a decision needs 'reviewer' and 'date'")
    split = _field(row, "split", str, where)
    if split not in ("train", "val"):
        raise ReviewError(f"{where}: 'split' must be train or val, got {split!r}")
    return Proposal(
        id=_field(row, "id", int, where),
        source=_field(row, "source", str, where),
        split=split,
        image=_field(row, "image", str, where),
        sha256=sha,
        width=width,
        height=height,
        cls=name,
        xyxy=(x1, y1, x2, y2),
        confidence=float(_field(row, "confidence", number, where)),
        model=_field(row, "model", str, where),
        proposed=row["proposed"],
        decision=decision,
        reviewer=row.get("reviewer"),
        date=row.get("date"),
    )


def read_reviews(path: Path, taxonomy: Taxonomy) -> list[Proposal]:
    """Every proposal of a review file, in file order; one source per file, ids unique."""
    lines = read_text(path, ReviewError).splitlines()
    proposals: list[Proposal] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ReviewError(f"{where}: not JSON: {err.msg}") from err
        proposals.append(parse_proposal(row, taxonomy, where))
    ids = Counter(p.id for p in proposals)
    if twice := sorted(i for i, n in ids.items() if n > 1):
        raise ReviewError(f"{path}: proposal ids used twice: {twice[:10]}")
    if len({p.source for p in proposals}) > 1:
        raise ReviewError(f"{path}: one source per file, found {sorted({p.source for p in proposals})}")
    return proposals


def write_reviews(path: Path, proposals: Iterable[Proposal]) -> Path:
    """One JSON object per line, in id order; written whole, then renamed over the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(
        json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in sorted(proposals, key=lambda p: p.id)
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path


# --- what the decisions mean for training ----------------------------------------------------------


@dataclass(frozen=True)
class PhotoReview:
    """What the decisions on one photo establish: classes confirmed absent, and pseudo-label boxes."""

    image: str
    split: str
    sha256: str
    width: int
    height: int
    absent: frozenset[str]
    boxes: tuple[tuple[str, tuple[float, float, float, float]], ...]  # (class, pixel xyxy) of `real` boxes

    @property
    def labelled(self) -> frozenset[str]:
        """The classes this review labels in the photo: absent ones, and those with pseudo-labels."""
        return self.absent | {cls for cls, _ in self.boxes}


def resolve(proposals: Iterable[Proposal]) -> dict[str, PhotoReview]:
    """Per photo (file name), the classes its decisions settle; photos that settle none are left out.

    A class is settled on a photo only when every proposal of it there is decided and none is
    `unsure`: all `false` -> absent; some `real` -> labelled by those boxes.
    """
    by_photo: dict[str, list[Proposal]] = {}
    for proposal in proposals:
        by_photo.setdefault(proposal.image, []).append(proposal)
    resolved = {}
    for image, members in by_photo.items():
        absent, boxes = set(), []
        for cls in sorted({p.cls for p in members}):
            decisions = [p.decision for p in members if p.cls == cls]
            if None in decisions or "unsure" in decisions:
                continue
            real = [p.xyxy for p in members if p.cls == cls and p.decision == "real"]
            if real:
                boxes += [(cls, xyxy) for xyxy in real]
            else:
                absent.add(cls)
        if absent or boxes:
            first = members[0]
            resolved[image] = PhotoReview(
                image, first.split, first.sha256, first.width, first.height, frozenset(absent), tuple(boxes)
            )
    return resolved


def confirmed_absent(path: Path, taxonomy: Taxonomy, split: str) -> dict[str, frozenset[str]]:
    """Photo file name -> the classes reviews confirmed absent on it, for one split of a source."""
    return {
        image: review.absent
        for image, review in resolve(read_reviews(path, taxonomy)).items()
        if review.split == split and review.absent
    }


def photo_counts(reviews: Iterable[PhotoReview]) -> dict[str, dict[str, dict[str, int]]]:
    """{split: {class: {"absent": photos, "pseudo_labelled": photos, "boxes": pseudo-label boxes}}}."""
    counts: dict[str, dict[str, Counter[str]]] = {}
    for review in reviews:
        per_class = counts.setdefault(review.split, {})
        for cls in review.absent:
            per_class.setdefault(cls, Counter())["absent"] += 1
        boxed = Counter(cls for cls, _ in review.boxes)
        for cls, boxes in boxed.items():
            per_class.setdefault(cls, Counter()).update({"pseudo_labelled": 1, "boxes": boxes})
    return {
        split: {
            cls: {key: counter[key] for key in ("absent", "pseudo_labelled", "boxes")}
            for cls, counter in sorted(per_class.items())
        }
        for split, per_class in sorted(counts.items())
    }


def decision_counts(proposals: Iterable[Proposal]) -> dict[str, dict[str, dict[str, int]]]:
    """{split: {class: {"proposals", "false", "real", "unsure", "pending"}}}: how far a review got."""
    counts: dict[str, dict[str, Counter[str]]] = {}
    for p in proposals:
        counter = counts.setdefault(p.split, {}).setdefault(p.cls, Counter())
        counter["proposals"] += 1
        counter[p.decision or "pending"] += 1
    keys = ("proposals", *DECISIONS, "pending")
    return {
        split: {cls: {k: c[k] for k in keys} for cls, c in sorted(per_class.items())}
        for split, per_class in sorted(counts.items())
    }


# --- proposing and deciding --------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    split: str
    path: Path


def propose(
    detector: Detector,
    source: str,
    photos: Iterable[Photo],
    classes: Iterable[int],
    existing: list[Proposal],
    on: date,
    threshold: float = DEFAULT_THRESHOLD,
    whole_photos: bool = False,
) -> Iterator[Proposal]:
    """New proposals: the detector's boxes of `classes` at or above `threshold` on each photo, except
    those already in `existing` (same photo and class, IoU >= SAME_BOX_IOU). With `whole_photos`,
    a class that has no proposal at all on a photo (in `existing` or new) is proposed as the whole
    photo. Ids follow the existing ones. Unreadable photos are skipped (a training set does not
    hold them)."""
    import supervision as sv

    from vision.core.files import file_sha256
    from vision.core.imageio import read_bgr

    wanted = set(classes)
    next_id = max((p.id for p in existing), default=0) + 1
    known: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for p in existing:
        known.setdefault((p.image, p.cls), []).append(p.xyxy)
    for photo in photos:
        image = read_bgr(photo.path)
        if image is None:
            continue
        height, width = image.shape[:2]
        asked: list[tuple[str, tuple[float, float, float, float], float]] = []  # class, box, confidence
        for xyxy, _, score, class_id, _, _ in detector(image):
            confidence = float(score) if score is not None else 0.0
            if class_id is None or int(class_id) not in wanted or confidence < threshold:
                continue
            name = detector.names[int(class_id)]
            box = tuple(float(v) for v in xyxy)
            seen = known.setdefault((photo.path.name, name), [])
            if np.any(sv.box_iou_batch(np.array([box]), np.array(seen).reshape(-1, 4)) >= SAME_BOX_IOU):
                continue
            seen.append(box)
            x1, y1, x2, y2 = (
                min(max(v, 0.0), limit) for v, limit in zip(box, (width, height) * 2, strict=True)
            )
            if x2 - x1 >= 1 and y2 - y1 >= 1:
                asked.append((name, (x1, y1, x2, y2), round(confidence, 4)))
        whole = (0.0, 0.0, float(width), float(height))
        for name in sorted(detector.names[c] for c in wanted) if whole_photos else ():
            if not (seen := known.setdefault((photo.path.name, name), [])):
                seen.append(whole)
                asked.append((name, whole, 0.0))
        digest = file_sha256(photo.path) if asked else ""
        for name, box, confidence in asked:
            yield Proposal(
                id=next_id,
                source=source,
                split=photo.split,
                image=photo.path.name,
                sha256=digest,
                width=width,
                height=height,
                cls=name,
                xyxy=box,
                confidence=confidence,
                model=detector.version,
                proposed=on.isoformat(),
            )
            next_id += 1


def decide(
    proposals: list[Proposal], decisions: dict[int, str], reviewer: str, on: date, change: bool = False
) -> list[Proposal]:
    """The proposals with `decisions` ({id: decision}) applied by `reviewer` on `on`.

    Every id must exist; a box already decided otherwise is changed only with `change` (a second
    look is deliberate, never a typo in a range).
    """
    if not reviewer.strip():
        raise ReviewError("a decision needs a reviewer's name")
    by_id = {p.id: p for p in proposals}
    if unknown := sorted(set(decisions) - set(by_id)):
        raise ReviewError(f"no proposal with id {', '.join(map(str, unknown[:10]))}")
    for number, decision in decisions.items():
        if decision not in DECISIONS:
            raise ReviewError(f"#{number}: decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        old = by_id[number].decision
        if old is not None and old != decision and not change:
            raise ReviewError(
                f"#{number} was decided '{old}'; pass change=True (--change) to make it '{decision}'"
            )
    return [
        replace(p, decision=decisions[p.id], reviewer=reviewer, date=on.isoformat())
        if p.id in decisions
        else p
        for p in proposals
    ]
