"""A background photo and what its labels say: where flyers may go (surfaces, the wall's foot), what
they must never cover, and the scene's scale in pixels per metre."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vision.detect.surfaces import BOTTOM_BAND, TOP_BAND

# Labelled classes that are surfaces flyers are stuck on, not objects a flyer may hide.
SURFACE_CLASSES = frozenset({"door", "window"})


# Typical heights in metres of labelled things, to read a scene's pixels per metre.
KNOWN_HEIGHTS_M = {"door": 2.1, "window": 1.6, "garbage_bin": 1.0, "overflow": 1.0, "car": 1.5}


DEFAULT_SCENE_HEIGHT_M = 4.5  # what a photo without known objects is taken to span vertically


# Labelled things that stand on the ground: their lowest bottom edge is taken as the wall's foot.
STANDING_CLASSES = frozenset(
    {"door", "garbage_bin", "overflow", "garbage", "car", "bus", "truck", "motorcycle", "bike"}
)


FLYER_HEIGHTS_M = (0.1, 3.0)  # flyers are stuck between just above the ground and an outstretched arm


@dataclass(frozen=True)
class Scene:
    """A background photo and what its labels say about where flyers may go and how big they are."""

    image: np.ndarray  # BGR uint8
    protected: np.ndarray  # (N, 4) pixel xyxy of labelled objects: never covered
    doors: np.ndarray  # (M, 4) pixel xyxy of doors: preferred surfaces
    windows: np.ndarray  # (K, 4) pixel xyxy of windows: shop windows get ads stuck on the glass
    pixels_per_metre: float | None  # from labelled objects of known size, None if there are none
    ground_y: float | None  # lowest image row of the wall's foot, None if nothing stands on the ground
    wall_foot: bool  # ground_y comes from a door: the rows above it are wall, no road to look for
    standing: np.ndarray  # (K, 4) pixel xyxy of labelled things that stand on the ground


def pixels_per_metre(boxes: np.ndarray, names: Sequence[str], image_height: int) -> float | None:
    """Median scale of the labelled objects of known height that are not cut by the frame."""
    scales = [
        (y2 - y1) / KNOWN_HEIGHTS_M[name]
        for (x1, y1, x2, y2), name in zip(boxes, names, strict=True)
        if name in KNOWN_HEIGHTS_M and y1 > 1 and y2 < image_height - 1
    ]
    return float(np.median(scales)) if scales else None


def scene_from_labels(image: np.ndarray, rows: np.ndarray, names: Sequence[str]) -> Scene:
    """A Scene from YOLO rows (class, cx, cy, w, h normalised) and the dataset's class names.

    `names` are normalised; classes in SURFACE_CLASSES are surfaces, every other labelled box is
    an object no flyer may cover.
    """
    height, width = image.shape[:2]
    rows = np.asarray(rows, dtype=float).reshape(-1, 5)
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    if len(rows) and int(rows[:, 0].max()) >= len(names):
        raise ValueError(f"label class {int(rows[:, 0].max())} is outside the dataset's {len(names)} names")
    row_names = [names[int(c)] for c in rows[:, 0]]
    surface = np.array([n in SURFACE_CLASSES for n in row_names], dtype=bool)
    doors = np.array([n == "door" for n in row_names], dtype=bool)
    standing = np.array([n in STANDING_CLASSES for n in row_names], dtype=bool)
    door_feet = [
        y2 for (_, _, _, y2), n in zip(boxes, row_names, strict=True) if n == "door" and y2 < height - 2
    ]
    # Bins and piles stand in front of the wall, whose foot then appears higher in the image than
    # theirs: without a door, flyers are kept above the middle of the highest standing object.
    middles = [(y1 + y2) / 2 for (_, y1, _, y2), s in zip(boxes, standing, strict=True) if s]
    ground_y = min(door_feet) if door_feet else (min(middles) if middles else None)
    return Scene(
        image=image,
        protected=boxes[~surface] if len(boxes) else np.zeros((0, 4)),
        doors=boxes[doors] if len(boxes) else np.zeros((0, 4)),
        windows=boxes[[n == "window" for n in row_names]] if len(boxes) else np.zeros((0, 4)),
        pixels_per_metre=pixels_per_metre(boxes, row_names, height),
        ground_y=None if ground_y is None else float(ground_y),
        wall_foot=bool(door_feet),
        standing=boxes[standing] if len(boxes) else np.zeros((0, 4)),
    )


def unlabelled_scene(image: np.ndarray) -> Scene:
    """A background without labels: nothing protected, scale and ground guessed."""
    none = np.zeros((0, 4))
    return Scene(image, none, none, none, None, None, False, none)


def flyer_rows(height: int, ground_y: float | None, ppm: float) -> tuple[int, int]:
    """Image rows a flyer may cover: from arm's reach down to just above the ground.

    Without anything standing on the ground, the frame's bottom band (road, pavement) is taken
    as the ground.
    """
    ground = ground_y if ground_y is not None else height * (1 - BOTTOM_BAND)
    top = max(int(height * TOP_BAND), int(ground - FLYER_HEIGHTS_M[1] * ppm))
    bottom = min(int(height * (1 - BOTTOM_BAND)), int(ground - FLYER_HEIGHTS_M[0] * ppm))
    return top, max(top, bottom)
