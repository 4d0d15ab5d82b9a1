"""Coordinates at the edge: Label Studio percent, YOLO normalised and COCO xywh exist only here;
everything else works in pixel xyxy."""

from __future__ import annotations

from collections.abc import Sequence


def to_percent(xyxy: Sequence[float], width: int, height: int) -> dict[str, float]:
    """Pixel xyxy -> Label Studio's top-left x, y, width, height in percent of the image."""
    x1, y1, x2, y2 = xyxy
    return {
        "x": 100.0 * x1 / width,
        "y": 100.0 * y1 / height,
        "width": 100.0 * (x2 - x1) / width,
        "height": 100.0 * (y2 - y1) / height,
    }


def from_percent(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[float, ...]:
    return (x * width / 100, y * height / 100, (x + w) * width / 100, (y + h) * height / 100)


def from_yolo(cx: float, cy: float, w: float, h: float, width: int, height: int) -> tuple[float, ...]:
    return ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)


def to_yolo(xyxy: Sequence[float], width: int, height: int) -> str:
    x1, y1, x2, y2 = xyxy
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    return " ".join(f"{v:.6f}" for v in values)


def from_coco(x: float, y: float, w: float, h: float) -> tuple[float, ...]:
    return (x, y, x + w, y + h)
