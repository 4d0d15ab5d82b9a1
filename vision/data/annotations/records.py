"""What reading and checking an export produce: raw boxes as written, checked samples in pixels,
and the problems found on the way (each naming its file and line or field)."""

from __future__ import annotations

import reprlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class AnnotationError(ValueError):
    """An export or a task image that cannot be used: `where` (file and line or field) and why."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message

    def problem(self) -> Problem:
        return Problem(self.where, self.message)


def lone_surrogate(value: Any) -> str | None:
    """Where a JSON value first holds text with half of a UTF-16 pair (`"\\ud800"`: JSON lets it
    be written and Python's reader takes it), e.g. `.data.image` or `[0].id`; None when nowhere.
    Such text is no character: kept, it failed the write of the inbox or the manifest (a 500, a
    traceback) after every check had passed. No recursion: an export nests as deep as it likes."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if not (item.isascii() or item.isprintable() or _encodes(item)):
                return where or "(text)"
        elif isinstance(item, dict):
            children = [(f"{where}.{key}", child) for key, child in item.items()]
            stack.extend((f"{where}.{key!r}", key) for key in item)  # keys after their values
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{where}[{index}]", child) for index, child in enumerate(item)]))
    return None


MAX_ID = 2**63  # Label Studio's ids are its database's 64-bit integers


def is_id(value: Any) -> bool:
    """A Label Studio (or COCO) id: a number a database can hold, or a short plain text (never a
    boolean, an object, empty, or a number of 100 digits, which no annotation tool gives)."""
    return (isinstance(value, int) and not isinstance(value, bool) and -MAX_ID <= value < MAX_ID) or (
        isinstance(value, str) and 0 < len(value) <= 100 and value.isprintable()
    )


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxlong = 3, 6, 6, 60
_SHOWN.maxstring = _SHOWN.maxother = 200


def shown(value: Any) -> str:
    """A value as a problem names it: short (a list of a million numbers, an array nested thousands
    deep or a 100-digit number as a box is shown by its start, never written out whole)."""
    return _SHOWN.repr(value)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Problem:
    where: str  # file, and line or field
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class RawBox:
    """One box as an export writes it; `unit` says how to read `coords`. A polygon (the detector
    takes boxes) keeps its `points` in the same unit, and `coords` is its enclosing box."""

    label: str
    coords: tuple[float, float, float, float]
    unit: str  # percent (x, y, w, h) | yolo (cx, cy, w, h normalised) | coco (x, y, w, h pixels)
    where: str
    rotation: float = 0.0
    points: tuple[tuple[float, float], ...] = ()  # a polygon's (x, y) points: percent, normalised or pixels


@dataclass
class RawSample:
    """One image of an export: its reference as written there, and its boxes."""

    image: str
    boxes: list[RawBox]
    where: str
    base: Path  # folder that relative image references are read against
    declared_size: tuple[int, int] | None = None  # (width, height) the export says the image has
    labelled: tuple[str, ...] | None = None  # label names this export's annotators could choose from
    project: str | None = None  # the Label Studio project of the task, when the export says
    confirmed_empty: bool = False  # an annotation submitted with no result at all: nothing to see here
    broken: bool = False  # a region the reader refused: the rest is no whole annotation of the image


@dataclass(frozen=True)
class Label:
    name: str  # taxonomy class name
    xyxy: tuple[float, float, float, float]  # pixels of the upright image
    confidence: float | None = None  # set on predictions only

    def to_json(self) -> list[Any]:
        return [self.name, *(round(v, 1) for v in self.xyxy)]


@dataclass
class Sample:
    """One validated image: file, size, pixel boxes with taxonomy names."""

    path: Path
    sha256: str
    width: int
    height: int
    labels: list[Label]
    labelled: tuple[str, ...]  # taxonomy classes its annotators labelled (the others are unknown)
    origin: str
    phash: str | None = None  # vision.core.phash: how a copy of a holdout photo is known


@dataclass
class ReadExport:
    format: str
    samples: list[RawSample]
    problems: list[Problem] = field(default_factory=list)
    unlabelled: int = 0  # images of the export nobody annotated (skipped, not negatives)
    unsupported: Counter[str] = field(default_factory=Counter)  # results that are no boxes, by type
    unsupported_only: int = 0  # images whose only results are no boxes (skipped, not negatives)
    superseded: int = 0  # annotations of a task older than the one taken (two annotators: the last counts)

    def skipped(self) -> dict[str, object]:
        """What was read but not taken, for counts and reports: never a negative."""
        return {
            "unlabelled": self.unlabelled,
            "unsupported": dict(sorted(self.unsupported.items())),
            "unsupported_only": self.unsupported_only,
            "superseded": self.superseded,
        }
