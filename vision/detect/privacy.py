"""Privacy: faces and licence plates blurred before a photo leaves the bureau.

Evidence photos show passers-by and number plates. Citizens reading Open311 and keys without the
`evidence:raw` scope get them blurred; authorised staff still get the raw file.

The detectors are OpenCV's shipped Haar cascades (`haarcascade_frontalface_default.xml` and
`haarcascade_russian_plate_number.xml`, from OpenCV's data: Debian's `opencv-data` package, or
the `cv2/data` folder of OpenCV 4 wheels). OpenCV 5 no longer ships the cascade classifier
itself, so `Cascade` evaluates these files here with integral images, the way OpenCV's
`CascadeClassifier.detectMultiScale` does (image pyramid, variance-normalised stump features,
neighbour grouping), vectorised over all windows of a scale at once.

A missing cascade is an error (`CascadeError`), never a silent pass-through: an image that cannot
be checked must not be served as if it had been.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

FACE_CASCADE = "haarcascade_frontalface_default.xml"
PLATE_CASCADE = "haarcascade_russian_plate_number.xml"
MAX_SIDE = 1280  # detection runs on a copy no larger than this; boxes are mapped back
CHUNK = 1 << 20  # windows x corners read per numpy step (bounds memory)
DENSE_UNTIL = 0.3  # share of windows alive below which they are gathered instead of sliced


def cascade_dirs() -> list[Path]:
    """Where OpenCV's cascades may be: the OpenCV 4 wheel's data folder, then Debian's opencv-data."""
    dirs = []
    shipped = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if shipped:
        dirs.append(Path(shipped))
    dirs += [Path("/usr/share/opencv4/haarcascades"), Path("/usr/share/opencv/haarcascades")]
    return dirs


class CascadeError(RuntimeError):
    """A cascade file that is missing or of a kind this evaluator does not run."""


def find_cascade(name: str) -> Path:
    for folder in cascade_dirs():
        if (folder / name).is_file():
            return folder / name
    looked = ", ".join(str(d) for d in cascade_dirs())
    raise CascadeError(
        f"{name} not found (looked in {looked}); install OpenCV's data: `apt-get install opencv-data`"
    )


@dataclass(frozen=True)
class Cascade:
    """A stump-based Haar cascade (OpenCV's new XML format), upright and tilted features."""

    name: str
    window: tuple[int, int]  # (width, height) of the trained window
    stage_thresholds: np.ndarray  # (S,)
    stage_ends: np.ndarray  # (S,) exclusive end of each stage's weak classifiers
    threshold: np.ndarray  # (K,) of each weak classifier
    leaves: np.ndarray  # (K, 2): value when below / at or above the threshold
    points: tuple[np.ndarray, ...]  # per stage (P, 3): integral-image corners (dx, dy, tilted)
    coefficients: tuple[np.ndarray, ...]  # per stage (P, K_stage): feature value = corners @ this

    @classmethod
    def load(cls, path: Path) -> Cascade:
        try:
            root = ET.parse(path).getroot().find("cascade")
        except (OSError, ET.ParseError) as err:
            raise CascadeError(f"{path}: cannot read cascade: {err}") from err
        if root is None or root.findtext("featureType", "").strip() != "HAAR":
            raise CascadeError(f"{path}: not a Haar cascade in OpenCV's XML format")
        window = (int(root.findtext("width", "0")), int(root.findtext("height", "0")))
        thresholds, ends, splits, leaves = [], [], [], []
        features: list[int] = []
        for stage in root.iterfind("stages/_"):
            thresholds.append(float(stage.findtext("stageThreshold", "nan")))
            for weak in stage.iterfind("weakClassifiers/_"):
                nodes = (weak.findtext("internalNodes") or "").split()
                values = [float(v) for v in (weak.findtext("leafValues") or "").split()]
                if len(nodes) != 4 or len(values) != 2:
                    raise CascadeError(f"{path}: only stump cascades are supported (one split per weak)")
                features.append(int(nodes[2]))
                splits.append(float(nodes[3]))
                leaves.append(values)
            ends.append(len(features))
        terms = [_feature_terms(f) for f in root.iterfind("features/_")]
        if not thresholds or not terms or min(window) <= 2:
            raise CascadeError(f"{path}: empty cascade")
        points, coefficients, start = [], [], 0
        for end in ends:  # each stage: the distinct corners its features read, and how they combine
            stage_terms = [terms[features[k]] for k in range(start, end)]
            corners = sorted({corner for t in stage_terms for corner in t})
            index = {corner: i for i, corner in enumerate(corners)}
            matrix = np.zeros((len(corners), end - start))
            for k, t in enumerate(stage_terms):
                for corner, weight in t.items():
                    matrix[index[corner], k] += weight
            if any(dx < 0 or dy < 0 for dx, dy, _ in corners):
                raise CascadeError(f"{path}: a feature reaches outside its window")
            points.append(np.array(corners, dtype=np.int64).reshape(-1, 3))
            coefficients.append(matrix)
            start = end
        return cls(
            name=path.name,
            window=window,
            stage_thresholds=np.array(thresholds),
            stage_ends=np.array(ends),
            threshold=np.array(splits),
            leaves=np.array(leaves),
            points=tuple(points),
            coefficients=tuple(coefficients),
        )

    def detect(
        self,
        gray: np.ndarray,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        min_size: int = 0,
    ) -> np.ndarray:
        """Objects in a grayscale uint8 image as an (N, 4) float array of pixel xyxy boxes."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError("detect needs a 2-D uint8 (grayscale) image")
        height, width = gray.shape
        win_w, win_h = self.window
        found: list[np.ndarray] = []
        factor = 1.0
        with threadpool_limits(1, "blas"):  # small products: BLAS threads only wait on each other
            while True:
                size = (round(width / factor), round(height / factor))
                if size[0] < win_w + 2 or size[1] < win_h + 2:
                    break
                if win_w * factor >= min_size:
                    scaled = gray if factor == 1.0 else cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR)
                    for x, y in self._scan(scaled, step=1 if factor > 2 else 2):
                        found.append(np.array([x, y, x + win_w, y + win_h]) * factor)
                factor *= scale_factor
        return group_boxes(np.array(found).reshape(-1, 4), min_neighbors)

    def _scan(self, image: np.ndarray, step: int) -> list[tuple[int, int]]:
        """Top-left corners of the windows of one pyramid level that pass every stage.

        The first stages, which most windows reach, read the integral images as strided slices
        over the whole grid of windows; once few windows are left, their corners are gathered.
        """
        win_w, win_h = self.window
        upright, squares, tilted = cv2.integral3(image, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
        stride = upright.shape[1]
        n_rows = len(range(0, image.shape[0] - win_h + 1, step))
        n_cols = len(range(0, image.shape[1] - win_w + 1, step))
        if n_rows == 0 or n_cols == 0:
            return []
        ys, xs = np.meshgrid(np.arange(n_rows) * step, np.arange(n_cols) * step, indexing="ij")
        base = (ys * stride + xs).ravel()
        norm = _spread(upright.ravel(), squares.ravel(), base + stride + 1, stride, win_w - 2, win_h - 2)
        tables, flat = (upright, tilted), np.concatenate([upright.ravel(), tilted.ravel()])
        alive: np.ndarray | None = np.ones(base.size, bool)  # None once windows are gathered
        start = 0
        for stage, end in enumerate(self.stage_ends):
            points, coefficients = self.points[stage], self.coefficients[stage]
            values = np.empty((base.size, end - start))
            if alive is not None:
                band = max(1, CHUNK // (n_cols * len(points)))
                for r in range(0, n_rows, band):
                    stop = min(n_rows, r + band)
                    corners = np.stack(
                        [
                            tables[t][dy + r * step : dy + stop * step : step, dx : dx + n_cols * step : step]
                            for dx, dy, t in points
                        ],
                        axis=-1,
                    )
                    values[r * n_cols : stop * n_cols] = corners.reshape(-1, len(points)) @ coefficients
            else:
                offsets = points[:, 0] + points[:, 1] * stride + points[:, 2] * upright.size
                rows = max(1, CHUNK // len(points))
                for i in range(0, base.size, rows):
                    values[i : i + rows] = flat[base[i : i + rows, None] + offsets[None]] @ coefficients
            passed = self._passes(stage, start, end, values, norm)
            if alive is not None:
                alive &= passed
                if alive.mean() < DENSE_UNTIL:
                    base, norm, alive = base[alive], norm[alive], None
            else:
                base, norm = base[passed], norm[passed]
            if base.size == 0 or (alive is not None and not alive.any()):
                return []
            start = end
        if alive is not None:
            base = base[alive]
        return [(int(b % stride), int(b // stride)) for b in base]

    def _passes(self, stage: int, start: int, end: int, values: np.ndarray, norm: np.ndarray) -> np.ndarray:
        """Windows whose stump votes reach the stage threshold (feature / normaliser < split: left leaf)."""
        below = values < self.threshold[start:end] * norm[:, None]
        votes = np.where(below, self.leaves[start:end, 0], self.leaves[start:end, 1]).sum(axis=1)
        return np.asarray(votes >= self.stage_thresholds[stage])


def _spread(
    sums: np.ndarray, squares: np.ndarray, base: np.ndarray, stride: int, w: int, h: int
) -> np.ndarray:
    """OpenCV's variance normaliser of each window: sqrt(area * sum(x^2) - sum(x)^2), 1 when flat."""

    def box(table: np.ndarray) -> np.ndarray:
        return table[base] - table[base + w] - table[base + h * stride] + table[base + h * stride + w]

    spread = w * h * box(squares) - box(sums) ** 2
    return np.where(spread > 0, np.sqrt(np.maximum(spread, 0)), 1.0)


def _feature_terms(feature: ET.Element) -> dict[tuple[int, int, int], float]:
    """A feature as weights of integral-image corners (dx, dy, tilted); shared corners add up.

    Corners follow OpenCV: upright (x,y) (x+w,y) (x,y+h) (x+w,y+h), tilted (x,y) (x-h,y+h)
    (x+w,y+w) (x+w-h,y+w+h); a rect's sum is p0 - p1 - p2 + p3.
    """
    tilted = int((feature.findtext("tilted") or "0").strip() == "1")
    terms: dict[tuple[int, int, int], float] = {}
    for rect in feature.iterfind("rects/_"):
        x, y, w, h, weight = (float(v) for v in (rect.text or "").split())
        x, y, w, h = int(x), int(y), int(w), int(h)
        if tilted:
            corners = [(x, y), (x - h, y + h), (x + w, y + w), (x + w - h, y + w + h)]
        else:
            corners = [(x, y), (x + w, y), (x, y + h), (x + w, y + h)]
        for (cx, cy), sign in zip(corners, (1, -1, -1, 1), strict=True):
            terms[(cx, cy, tilted)] = terms.get((cx, cy, tilted), 0.0) + sign * weight
    return terms


def group_boxes(boxes: np.ndarray, min_neighbors: int, eps: float = 0.2) -> np.ndarray:
    """OpenCV's groupRectangles: cluster similar boxes, average each cluster, keep the well-supported."""
    if len(boxes) == 0 or min_neighbors <= 0:
        return boxes.astype(float)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    delta = eps * (np.minimum(w[:, None], w[None]) + np.minimum(h[:, None], h[None])) * 0.5
    similar = (np.abs(boxes[:, None, :] - boxes[None, :, :]) <= delta[..., None]).all(axis=2)
    labels = np.arange(len(boxes))
    while True:  # connected components: each box takes the smallest label among its similar boxes
        smallest = np.where(similar, labels[None, :], len(boxes)).min(axis=1)
        smallest = smallest[smallest]  # and jumps along it; labels only ever decrease
        if (smallest == labels).all():
            break
        labels = smallest
    out = [
        boxes[labels == label].mean(axis=0)
        for label in np.unique(labels)
        if (labels == label).sum() > min_neighbors
    ]
    return np.array(out, dtype=float).reshape(-1, 4)


@dataclass(frozen=True)
class Redactor:
    """Finds faces and plates and blurs them; `redact` is the one verb."""

    faces: Cascade
    plates: Cascade
    max_side: int = MAX_SIDE

    def regions(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Pixel xyxy boxes of faces and plates in a BGR image (found on a copy of at most max_side)."""
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        scale = min(1.0, self.max_side / max(gray.shape))
        if scale < 1.0:
            size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        return {
            "faces": self.faces.detect(gray) / scale,
            "plates": self.plates.detect(gray) / scale,
        }

    def redact(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """A copy with every face and plate blurred beyond recognition, and how many of each."""
        found = self.regions(image)
        return blur_regions(image, np.concatenate(list(found.values()))), {
            k: len(v) for k, v in found.items()
        }


def blur_regions(
    image: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]], margin: float = 0.15
) -> np.ndarray:
    """Pixelate then smooth each box (grown by `margin`): coarse enough that no face or digit survives."""
    out = image.copy()
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=float).reshape(-1, 4):
        grow_x, grow_y = (x2 - x1) * margin, (y2 - y1) * margin
        left, top = max(0, math.floor(x1 - grow_x)), max(0, math.floor(y1 - grow_y))
        right, bottom = min(width, math.ceil(x2 + grow_x)), min(height, math.ceil(y2 + grow_y))
        if right - left < 2 or bottom - top < 2:
            continue
        region = out[top:bottom, left:right]
        small = (max(1, (right - left) // 10), max(1, (bottom - top) // 10))
        coarse = cv2.resize(region, small, interpolation=cv2.INTER_AREA)
        blocky = cv2.resize(coarse, (right - left, bottom - top), interpolation=cv2.INTER_NEAREST)
        out[top:bottom, left:right] = cv2.GaussianBlur(blocky, (0, 0), max(2.0, (right - left) / 20))
    return out


@cache
def default_redactor() -> Redactor:
    """OpenCV's frontal-face and plate cascades, loaded once per process (raises CascadeError)."""
    return Redactor(Cascade.load(find_cascade(FACE_CASCADE)), Cascade.load(find_cascade(PLATE_CASCADE)))
