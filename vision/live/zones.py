"""Zones in pixels: a configured zone (normalised polygon) placed on frames of a given size.

Configs hold normalised coordinates so a camera can change resolution without editing them; the
pixel polygon and supervision's zone mask are built for the size of the frame at hand and rebuilt
when that size changes (a stream switching from sub-stream to main stream, say).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import supervision as sv

from vision.live.cameras import Point, Zone

Size = tuple[int, int]  # (width, height) in pixels


def pixel_polygon(polygon: Sequence[Point], size: Size) -> np.ndarray:
    """Normalised (x, y) points -> integer pixel points of an image of `size` (width, height)."""
    width, height = size
    points = np.asarray(polygon, dtype=np.float64) * np.array([width, height], dtype=np.float64)
    return np.rint(points).astype(np.int64)


def polygon_mask(polygon: Sequence[Point], size: Size) -> np.ndarray:
    """Boolean (height, width) mask of a normalised polygon drawn on an image of `size`."""
    width, height = size
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(mask, [pixel_polygon(polygon, size).astype(np.int32)], 1)
    return mask.astype(bool)


class FrameZone:
    """One zone on the frames of one camera: which detections stand in it.

    The triggering anchor is the zone rule's (bottom-centre by default: where a car or a stall
    touches the ground), so a tall truck whose roof overlaps the zone does not count.
    """

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self._size: Size | None = None
        self._polygon_zone: sv.PolygonZone | None = None

    @property
    def id(self) -> str:
        return self.zone.id

    def _at(self, size: Size) -> sv.PolygonZone:
        if self._polygon_zone is None or size != self._size:
            self._polygon_zone = sv.PolygonZone(
                polygon=pixel_polygon(self.zone.polygon, size),
                triggering_anchors=(self.zone.rule.position,),
            )
            self._size = size
        return self._polygon_zone

    def pixels(self, size: Size) -> np.ndarray:
        """The zone's polygon in pixels of a frame of `size`."""
        return self._at(size).polygon

    def trigger(self, detections: sv.Detections, size: Size) -> np.ndarray:
        """Boolean per detection: its anchor lies in the zone on a frame of `size` (width, height)."""
        if len(detections) == 0:
            return np.zeros(0, dtype=bool)
        return self._at(size).trigger(detections)
