"""Stored boxes: the one form in which photos and evidence keep what the detector found, and its codec.

A box is pixel xyxy in the upright photo, a score and a class name, stored as JSON:
`{"xyxy": [x1, y1, x2, y2], "confidence": 0.87, "class": "garbage"}` (xyxy to 0.1 px, scores to
4 decimals). Writers build `Box`es, which refuse impossible values on construction, and store
`to_json()`; readers turn whatever the database holds back into boxes with `parse_boxes`, and into
`sv.Detections` with `to_detections` where supervision draws or compares them.

Parsing is strict (exactly those three keys, four finite coordinates in order, a score in 0..1, a
class name) but never fails the reader: a page, a report or a labelling queue must still come out
when one stored entry was hand-edited or written by a buggy tool. Bad entries are skipped, counted
and logged with the reason (`StoredBoxes.rejected`), and the good ones are used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import supervision as sv

CLASS_NAME = "class_name"  # supervision's key of class names in `Detections.data`
KEYS = frozenset({"xyxy", "confidence", "class"})
log = logging.getLogger("streetorder.boxes")


class BoxError(ValueError):
    """A box that cannot be stored or read back; the message says which part is wrong."""


@dataclass(frozen=True)
class Box:
    """One detection as photos and evidence store it: pixel xyxy in the upright photo."""

    xyxy: tuple[float, float, float, float]
    confidence: float
    class_name: str

    def __post_init__(self) -> None:
        if len(self.xyxy) != 4 or not all(_number(v) for v in self.xyxy):
            raise BoxError(f"xyxy: {list(self.xyxy)!r} is not four finite numbers")
        x1, y1, x2, y2 = self.xyxy
        if x1 > x2 or y1 > y2:
            raise BoxError(f"xyxy: {list(self.xyxy)!r} is not x1 <= x2, y1 <= y2")
        if not _number(self.confidence) or not 0 <= self.confidence <= 1:
            raise BoxError(f"confidence: {self.confidence!r} is not a number in 0..1")
        if not isinstance(self.class_name, str) or not self.class_name:
            raise BoxError(f"class: {self.class_name!r} is not a class name")

    def to_json(self) -> dict[str, Any]:
        return {
            "xyxy": [round(float(v), 1) for v in self.xyxy],
            "confidence": round(float(self.confidence), 4),
            "class": self.class_name,
        }

    @classmethod
    def from_json(cls, entry: object) -> Box:
        """One stored entry, or BoxError naming what is wrong with it."""
        if not isinstance(entry, dict):
            raise BoxError(f"{type(entry).__name__} instead of an object")
        if entry.keys() != KEYS:
            missing, unknown = sorted(KEYS - entry.keys()), sorted(map(str, entry.keys() - KEYS))
            raise BoxError(f"keys: missing {missing}, unknown {unknown}")
        xyxy = entry["xyxy"]
        if not isinstance(xyxy, list) or len(xyxy) != 4:
            raise BoxError(f"xyxy: {xyxy!r} is not a list of four numbers")
        x1, y1, x2, y2 = xyxy
        return cls((x1, y1, x2, y2), entry["confidence"], entry["class"])

    def scaled(self, factor: float) -> Box:
        """The same box on the photo resized by `factor` (thumbnails)."""
        x1, y1, x2, y2 = (v * factor for v in self.xyxy)
        return Box((x1, y1, x2, y2), self.confidence, self.class_name)


@dataclass(frozen=True)
class StoredBoxes:
    """What `parse_boxes` read: the good boxes, in stored order, and one reason per skipped entry."""

    boxes: tuple[Box, ...]
    rejected: tuple[str, ...] = ()


def parse_boxes(stored: object, where: str) -> StoredBoxes:
    """A stored JSON list of boxes (None: none); bad entries skipped and logged, naming `where`."""
    if stored is None:
        return StoredBoxes(())
    if not isinstance(stored, list):
        found = StoredBoxes((), (f"{type(stored).__name__} instead of a list of boxes",))
    else:
        boxes, rejected = [], []
        for index, entry in enumerate(stored):
            try:
                boxes.append(Box.from_json(entry))
            except BoxError as err:
                rejected.append(f"entry {index}: {err}")
        found = StoredBoxes(tuple(boxes), tuple(rejected))
    if found.rejected:
        log.warning(
            "%s: %d stored box(es) skipped: %s", where, len(found.rejected), "; ".join(found.rejected)
        )
    return found


def boxes_json(boxes: Iterable[Box]) -> list[dict[str, Any]]:
    return [box.to_json() for box in boxes]


def boxes_of(detections: sv.Detections, names: Sequence[str]) -> list[Box]:
    """Detections as boxes with class names (`names[class_id]`, or the detections' own class
    names where they carry them), best first."""
    count = len(detections)
    confidences = detections.confidence if detections.confidence is not None else np.ones(count)
    class_ids = detections.class_id if detections.class_id is not None else np.zeros(count, int)
    own_names = detections.data.get(CLASS_NAME)
    boxes = []
    for k, (xyxy, confidence, class_id) in enumerate(
        zip(detections.xyxy, confidences, class_ids, strict=True)
    ):
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        name = str(own_names[k]) if own_names is not None else names[int(class_id)]
        boxes.append(Box((x1, y1, x2, y2), float(confidence), name))
    return sorted(boxes, key=lambda b: -b.confidence)


def to_detections(boxes: Sequence[Box], names: Sequence[str] = ()) -> sv.Detections:
    """Boxes as supervision detections: class ids index `names`, classes it lacks are numbered after
    them in order of appearance (so colours stay by taxonomy order); names in `data["class_name"]`."""
    classes = list(names)
    for box in boxes:
        if box.class_name not in classes:
            classes.append(box.class_name)
    if not boxes:
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=np.array([b.xyxy for b in boxes], dtype=np.float32).reshape(-1, 4),
        confidence=np.array([b.confidence for b in boxes], dtype=np.float32),
        class_id=np.array([classes.index(b.class_name) for b in boxes], dtype=int),
        data={CLASS_NAME: np.array([b.class_name for b in boxes])},
    )


def _number(value: object) -> bool:
    """A finite real number (JSON's true and false are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    return math.isfinite(float(value))


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) times `scale`, each at least 1 pixel: a 1 x 5000 sliver scaled to 320 px
    long would be 0 pixels wide, and OpenCV's resize refuses that."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def box_mask(shape: tuple[int, int], boxes: np.ndarray, margin: int = 0) -> np.ndarray:
    """A bool mask (rows, columns) of the union of pixel xyxy boxes, each grown by `margin` pixels and
    rounded outward, so that no pixel a box touches is left out."""
    mask = np.zeros(shape, dtype=bool)
    height, width = shape
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=float).reshape(-1, 4):
        left, top = max(0, math.floor(x1) - margin), max(0, math.floor(y1) - margin)
        right, bottom = min(width, math.ceil(x2) + margin), min(height, math.ceil(y2) + margin)
        mask[top:bottom, left:right] = True
    return mask
