"""Evidence pictures: boxes with class and score drawn the way people check a finding.

Boxes are those photos and evidence store (vision.core.boxes, pixels of the upright photo), so any
stored finding can be drawn again later.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import supervision as sv

from vision.core.boxes import Box, to_detections


def draw_boxes(image: np.ndarray, boxes: Sequence[Box], names: Sequence[str] = ()) -> np.ndarray:
    """A copy of a BGR image with the boxes and their labels; one colour per class (taxonomy order)."""
    if not boxes:
        return image.copy()
    detections = to_detections(boxes, names)
    labels = [f"{b.class_name} {b.confidence:.2f}" for b in boxes]
    thickness = max(2, round(max(image.shape[:2]) / 320))
    drawn = sv.BoxAnnotator(thickness=thickness).annotate(image.copy(), detections)
    labeller = sv.LabelAnnotator(  # smart_position: a label above a box at the top edge stays in frame
        text_scale=thickness / 4, text_thickness=max(1, thickness // 2), smart_position=True
    )
    return labeller.annotate(drawn, detections, labels=labels)


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
