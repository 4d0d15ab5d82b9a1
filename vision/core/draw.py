"""Evidence pictures: boxes with class and score drawn the way people check a finding.

Boxes come as stored on photos and evidence (`{"xyxy": [...], "confidence": .., "class": name}`,
pixels of the upright photo), so any stored finding can be drawn again later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import supervision as sv


def draw_boxes(
    image: np.ndarray, boxes: Sequence[Mapping[str, Any]], names: Sequence[str] = ()
) -> np.ndarray:
    """A copy of a BGR image with the boxes and their labels; one colour per class (taxonomy order)."""
    if not boxes:
        return image.copy()
    classes = list(names)
    for box in boxes:
        if str(box.get("class", "?")) not in classes:
            classes.append(str(box.get("class", "?")))
    detections = sv.Detections(
        xyxy=np.array([b["xyxy"] for b in boxes], dtype=np.float32).reshape(-1, 4),
        confidence=np.array([float(b.get("confidence", 0.0)) for b in boxes], dtype=np.float32),
        class_id=np.array([classes.index(str(b.get("class", "?"))) for b in boxes], dtype=int),
    )
    labels = [f"{b.get('class', '?')} {float(b.get('confidence', 0.0)):.2f}" for b in boxes]
    thickness = max(2, round(max(image.shape[:2]) / 320))
    drawn = sv.BoxAnnotator(thickness=thickness).annotate(image.copy(), detections)
    return sv.LabelAnnotator(text_scale=thickness / 4, text_thickness=max(1, thickness // 2)).annotate(
        drawn, detections, labels=labels
    )


def crop_box(image: np.ndarray, xyxy: Sequence[float], margin: float = 0.1) -> np.ndarray:
    """The box's region with a margin of context around it, clipped to the image."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    pad_x, pad_y = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(x1 - pad_x)), max(0, int(y1 - pad_y))
    right, bottom = min(width, int(np.ceil(x2 + pad_x))), min(height, int(np.ceil(y2 + pad_y)))
    return image[top : max(bottom, top + 1), left : max(right, left + 1)].copy()


def fit_width(image: np.ndarray, width: int) -> np.ndarray:
    """Scaled down to `width` pixels wide (never up), for thumbnails."""
    if image.shape[1] <= width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
