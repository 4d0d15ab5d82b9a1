"""What a tracked object looks like: a cheap colour signature of its box, so that an object found
again at the same place keeps its dwell clock only if it is the same object (issue 28: a clock a
grey car began passed to an SUV that parked there 30 s after it left).

The signature is a colour histogram (HSV, 6 x 3 x 4 bins) of each quarter of the box's inner part
(a 10 % margin, so the ground around a car weighs little), compared by Bhattacharyya distance: no
model, no download, well under a millisecond a box. On 235 real car crops (vehicles-in), the same
car under +-8 % box jitter, +-10 % light, sensor noise and JPEG stayed under 0.43 in every case;
two different grey or silver cars fell under it 7.5 % of the time (colour alone cannot tell two
silver hatchbacks apart; a grey car and a silver SUV are 0.64 apart).
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = [6, 3, 4]  # hue, saturation, value
RANGES = [0, 180, 0, 256, 0, 256]
SIGNATURE_SIZE = 4 * BINS[0] * BINS[1] * BINS[2]  # four quarters
MARGIN = 0.1  # of the box's width and height, left out on each side
LEARN_RATE = 0.2  # weight of the newest unoccluded sighting in an object's signature


def signature(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The colour signature of `box` (xyxy pixels) on a BGR image; None when too small to say."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * MARGIN, (y2 - y1) * MARGIN
    left, top = max(0, round(x1 + dx)), max(0, round(y1 + dy))
    right, bottom = min(width, round(x2 - dx)), min(height, round(y2 - dy))
    if right - left < 4 or bottom - top < 4:
        return None
    hsv = cv2.cvtColor(image[top:bottom, left:right], cv2.COLOR_BGR2HSV)
    mid_x, mid_y = (right - left) // 2, (bottom - top) // 2
    quarters = []
    for rows in (slice(0, mid_y), slice(mid_y, None)):
        for cols in (slice(0, mid_x), slice(mid_x, None)):
            hist = cv2.calcHist([np.ascontiguousarray(hsv[rows, cols])], [0, 1, 2], None, BINS, RANGES)
            quarters.append(hist.ravel() / max(float(hist.sum()), 1.0))
    return np.concatenate(quarters).astype(np.float32) / 4


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two signatures: 0 the same colours, 1 nothing in common."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def blend(known: np.ndarray | None, seen: np.ndarray | None) -> np.ndarray | None:
    """An object's signature after one more unoccluded sighting (a running mean)."""
    if known is None or seen is None:
        return seen if known is None else known
    return ((1 - LEARN_RATE) * known + LEARN_RATE * seen).astype(np.float32)
