"""Where posted flyers can be: simple, explainable surface heuristics for a street photo.

Flyers are stuck on vertical man-made surfaces (walls, poles, doors, utility boxes) at human
height, not on the sky, trees or the road. Without a segmentation model these rules stand in:
- sky: bright low-saturation or blue, smooth pixels connected to the top border;
- vegetation: saturated green pixels;
- road / ground and roofline: a band at the bottom and at the top of the frame;
- long near-vertical line segments: poles, drainpipes, door frames and wall corners;
- the dominant line directions near a point: how a flat surface there is tilted in the image.
The synthetic flyer generator places flyers with them, and the OCR candidate search keeps only
text found on such surfaces. All functions are pure (numpy in, numpy out).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SKY_SMOOTHNESS = 18.0  # gradient magnitude (grey levels / px) below which a bright pixel may be sky
TOP_BAND = 0.05  # fraction of the height never used: roofline and sky at the frame's top
BOTTOM_BAND = 0.10  # fraction of the height never used: road and pavement at the frame's bottom


def gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of a lightly smoothed grey image (float32)."""
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.0).astype(np.float32)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy) / 4.0


def padding_mask(image: np.ndarray) -> np.ndarray:
    """Pure black fill connected to the border: the corners a rotated or letterboxed export left."""
    black = (image.max(axis=2) <= 6).astype(np.uint8)
    _, labels = cv2.connectedComponents(black, connectivity=4)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.isin(labels, np.unique(border[border > 0]))


def sky_mask(image: np.ndarray) -> np.ndarray:
    """Bright, smooth, grey-white or blue regions touching the top of the picture (bool H x W).

    "The top" is the first row, or the black fill of a rotated export above the picture.
    """
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    # overcast sky is grey-white but never warmer than neutral; beige plaster is (red > blue)
    neutral = image[..., 0].astype(np.int16) >= image[..., 2].astype(np.int16) - 4
    grey_white = (val > 150) & (sat < 45) & neutral
    blue = (hue >= 90) & (hue <= 130) & (sat > 35) & (val > 70)  # deep blue sky can be quite dark
    smooth = gradient_magnitude(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)) < SKY_SMOOTHNESS
    candidate = cv2.morphologyEx(
        ((grey_white | blue) & smooth).astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)
    )
    _, labels = cv2.connectedComponents(candidate, connectivity=4)
    # grown past the fill edge: its gradient and the opening leave a few rows of non-sky there
    top = cv2.dilate(padding_mask(image).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    top[image.shape[0] // 2 :] = False
    top[0] = True
    touching = np.unique(labels[top & (candidate > 0)])
    return np.isin(labels, touching[touching > 0])


def vegetation_mask(image: np.ndarray) -> np.ndarray:
    """Trees, hedges, grass (bool H x W): saturated green, or greener than grey (excess green).

    Shaded foliage is dark and barely saturated; the excess-green index (2G - R - B) / (R + G + B)
    still finds it. Leaves are speckled, so the mask is closed and grown a little.
    """
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    pixels = image.astype(np.float32)
    blue, green, red = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    excess_green = (2 * green - red - blue) / (blue + green + red + 1.0)
    greenish = (
        (hue >= 35) & (hue <= 95) & (green > red)
    )  # not yellow: yellow walls are "greener than grey" too
    leafy = ((hue >= 33) & (hue <= 85) & (sat > 70) & (val > 35)) | (
        greenish & (excess_green > 0.06) & (val < 210)
    )
    mask = cv2.morphologyEx(leafy.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool)


def ground_mask(image: np.ndarray, feet: np.ndarray | None = None, start: float = 0.45) -> np.ndarray:
    """Road and pavement: grey, foreshortened texture where things stand (bool H x W).

    A horizontal surface seen from standing height is squashed vertically, so its texture has far
    more horizontal than vertical edges; walls seen face-on do not. Only the lower part of the
    frame (below `start` x height) is considered, and only regions that reach the bottom band or
    the foot of a standing object (`feet`: xyxy boxes of things on the ground; collages of two
    photos have a second ground halfway up).
    """
    height = image.shape[0]
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (0, 0), 1.0).astype(np.float32)
    sigma = max(3.0, height / 40)
    across = cv2.GaussianBlur(np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)), (0, 0), sigma)
    along = cv2.GaussianBlur(np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1)), (0, 0), sigma)
    squashed = across / (across + along + 1e-3) < 0.4
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1] < 60
    candidate = (squashed & grey).astype(np.uint8)
    candidate[: int(start * height)] = 0
    _, labels = cv2.connectedComponents(candidate, connectivity=4)
    seeds = np.zeros(candidate.shape, dtype=bool)
    seeds[height - int(BOTTOM_BAND * height) - 1 :] = True
    for x1, _, x2, y2 in np.asarray(feet if feet is not None else [], dtype=float).reshape(-1, 4):
        seeds[int(max(0, y2 - 4)) : int(y2 + 10), int(max(0, x1)) : int(x2)] = True
    return np.isin(labels, np.unique(labels[seeds & (candidate > 0)]))


def surface_mask(image: np.ndarray, top: float = TOP_BAND, bottom: float = BOTTOM_BAND) -> np.ndarray:
    """Pixels that may be a wall, pole, door or box: not sky, vegetation, fill, roofline or road band."""
    height = image.shape[0]
    allowed = ~(sky_mask(image) | vegetation_mask(image) | padding_mask(image))
    allowed[: round(top * height)] = False
    allowed[height - round(bottom * height) :] = False
    return allowed


@dataclass(frozen=True)
class Lines:
    """Line segments of an image, xyxy rows, split by direction."""

    vertical: np.ndarray  # (N, 4) within 15 degrees of vertical
    horizontal: np.ndarray  # (M, 4) within 35 degrees of horizontal (facade lines in perspective)


def line_segments(image: np.ndarray, min_length: float = 0.06) -> Lines:
    """Straight edges longer than `min_length` x the image height (probabilistic Hough)."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (0, 0), 1.2), 50, 140)
    length = max(12, int(min_length * image.shape[0]))
    found = cv2.HoughLinesP(
        edges, 1, np.pi / 180, threshold=max(12, length // 2), minLineLength=length, maxLineGap=3
    )
    segments = np.zeros((0, 4), np.float32) if found is None else found.reshape(-1, 4).astype(np.float32)
    dx, dy = segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1]
    angle = np.degrees(np.arctan2(np.abs(dy), np.abs(dx)))  # 0 = horizontal, 90 = vertical
    return Lines(vertical=segments[angle > 75], horizontal=segments[angle < 35])


def segment_angles(segments: np.ndarray, reference: float) -> np.ndarray:
    """Direction of each segment in degrees, folded to within 90 degrees of `reference`."""
    dx, dy = segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1]
    angle = np.degrees(np.arctan2(dy, dx))
    return (angle - reference + 90.0) % 180.0 - 90.0 + reference


def near_segments(segments: np.ndarray, point: tuple[float, float], radius: float) -> np.ndarray:
    """The segments whose midpoints lie within `radius` of `point`."""
    mid_x = (segments[:, 0] + segments[:, 2]) / 2
    mid_y = (segments[:, 1] + segments[:, 3]) / 2
    return segments[np.hypot(mid_x - point[0], mid_y - point[1]) < radius]


def local_directions(lines: Lines, point: tuple[float, float], radius: float) -> tuple[float, float]:
    """Image angles (degrees) of the surface's vertical and horizontal near `point`.

    The median direction of the nearby line segments; 90 and 0 (an upright frontal surface)
    where no lines are near.
    """
    vertical = near_segments(lines.vertical, point, radius)
    horizontal = near_segments(lines.horizontal, point, radius)
    up = float(np.median(segment_angles(vertical, 90.0))) if len(vertical) else 90.0
    across = float(np.median(segment_angles(horizontal, 0.0))) if len(horizontal) else 0.0
    return up, across


def edge_sharpness(gray: np.ndarray, mask: np.ndarray | None = None) -> float:
    """How crisp edges are: mean |Laplacian| / mean gradient over strong-edge pixels.

    A blurred photo has soft edges (low ratio); the generator blurs a flyer until its ratio
    matches the background's.
    """
    grad = gradient_magnitude(gray)
    laplace = np.abs(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F, ksize=3))
    strong = grad > max(8.0, float(np.percentile(grad, 90)))
    if mask is not None:
        strong &= mask
    if strong.sum() < 20:
        return 0.0
    return float(laplace[strong].mean() / (4.0 * grad[strong].mean()))


def noise_sigma(gray: np.ndarray) -> float:
    """Sensor/compression noise level: robust deviation of the fine detail in flat regions."""
    gray = gray.astype(np.float32)
    detail = gray - cv2.medianBlur(gray.astype(np.uint8), 3).astype(np.float32)
    flat = gradient_magnitude(gray) < 6.0
    values = np.abs(detail[flat]) if flat.sum() > 100 else np.abs(detail).ravel()
    # mean absolute deviation of Gaussian noise is 0.8 sigma; clipping drops edges that slipped in
    return float(np.clip(values, 0, 10).mean() / 0.8)
