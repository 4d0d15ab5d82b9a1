"""The codec of stored boxes: JSON round trip, sv.Detections round trip, and bad stored JSON."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import supervision as sv

from vision.core.boxes import Box, BoxError, box_mask, boxes_json, boxes_of, parse_boxes, to_detections
from vision.core.draw import draw_boxes

NAMES = ["garbage", "overflow", "flyer"]
GOOD = {"xyxy": [10.0, 20.5, 110.2, 90.0], "confidence": 0.8731, "class": "garbage"}


def test_json_round_trip_keeps_what_is_stored() -> None:
    boxes = [Box((10.04, 20.46, 110.2, 90.0), 0.873149, "garbage"), Box((0, 0, 5, 5), 1.0, "occupancy")]
    stored = boxes_json(boxes)
    assert stored[0] == {"xyxy": [10.0, 20.5, 110.2, 90.0], "confidence": 0.8731, "class": "garbage"}
    again = parse_boxes(stored, "test")
    assert again.rejected == () and boxes_json(again.boxes) == stored


def test_detections_round_trip_with_classes_the_taxonomy_lacks() -> None:
    detections = sv.Detections(
        xyxy=np.array([[1, 2, 30, 40], [5, 5, 50, 60]], dtype=np.float32),
        confidence=np.array([0.4, 0.9], dtype=np.float32),
        class_id=np.array([2, 0]),
    )
    boxes = boxes_of(detections, NAMES)
    assert [(b.class_name, round(b.confidence, 3)) for b in boxes] == [("garbage", 0.9), ("flyer", 0.4)]
    with_occupancy = [*boxes, Box((0, 0, 9, 9), 1.0, "occupancy")]
    back = to_detections(with_occupancy, NAMES)
    assert back.class_id.tolist() == [0, 2, 3]  # taxonomy order first, then the others
    assert back.data["class_name"].tolist() == ["garbage", "flyer", "occupancy"]
    assert boxes_of(back, NAMES) == sorted(with_occupancy, key=lambda b: -b.confidence)
    assert len(to_detections([], NAMES)) == 0


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("garbage", "str instead of an object"),
        ({**GOOD, "score": 0.5}, "unknown ['score']"),
        ({"xyxy": GOOD["xyxy"], "class": "garbage"}, "missing ['confidence']"),
        ({**GOOD, "xyxy": [1, 2, 3]}, "xyxy"),
        ({**GOOD, "xyxy": "10,20,30,40"}, "xyxy"),
        ({**GOOD, "xyxy": [1, 2, math.nan, 4]}, "four finite numbers"),
        ({**GOOD, "xyxy": [1, 2, "3", 4]}, "four finite numbers"),
        ({**GOOD, "xyxy": [50, 20, 10, 90]}, "x1 <= x2"),
        ({**GOOD, "confidence": 1.5}, "confidence"),
        ({**GOOD, "confidence": True}, "confidence"),
        ({**GOOD, "confidence": None}, "confidence"),
        ({**GOOD, "class": ""}, "class"),
        ({**GOOD, "class": 3}, "class"),
    ],
)
def test_a_bad_stored_entry_is_skipped_counted_and_logged(
    entry: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "streetorder.boxes"):
        found = parse_boxes([GOOD, entry, GOOD], "evidence 7")
    assert [b.to_json() for b in found.boxes] == [GOOD, GOOD]
    assert (
        len(found.rejected) == 1 and found.rejected[0].startswith("entry 1: ") and reason in found.rejected[0]
    )
    assert "evidence 7: 1 stored box(es) skipped" in caplog.text


def test_stored_json_that_is_no_list() -> None:
    assert parse_boxes(None, "photo 1").boxes == ()
    found = parse_boxes({"xyxy": [0, 0, 1, 1]}, "photo 2")
    assert found.boxes == () and found.rejected == ("dict instead of a list of boxes",)


def test_a_box_that_cannot_be_stored_is_refused_when_made() -> None:
    with pytest.raises(BoxError, match="confidence"):
        Box((0, 0, 1, 1), float("nan"), "garbage")
    with pytest.raises(BoxError, match="x1 <= x2"):
        Box((5, 0, 1, 1), 0.5, "garbage")


def test_draw_takes_parsed_boxes() -> None:
    image = np.zeros((100, 120, 3), np.uint8)
    found = parse_boxes([GOOD, {"xyxy": [0, 0, 60, 50], "confidence": 0.5, "class": "occupancy"}], "test")
    drawn = draw_boxes(image, found.boxes, NAMES)
    assert drawn.shape == image.shape and drawn.any() and not image.any()


def test_the_label_of_a_box_at_the_top_edge_is_drawn_inside_the_picture() -> None:
    """A bin filling the photo to its top edge: its label went above the box, off the picture."""
    image = np.full((240, 320, 3), 128, np.uint8)
    drawn = draw_boxes(image, [Box((100.0, 0.0, 300.0, 120.0), 0.9, "overflow")], NAMES)
    coloured = np.abs(drawn.astype(int) - 128).max(axis=2) > 40
    assert coloured[5:15, 105:140].mean() > 0.5  # the label's filled background, below the edge line


@pytest.mark.parametrize(
    ("boxes", "margin", "rows", "columns"),
    [
        ([[2, 1, 5, 3]], 0, (1, 3), (2, 5)),  # whole pixels: the box itself
        ([[2.4, 1.6, 4.2, 2.1]], 0, (1, 3), (2, 5)),  # fractions rounded outward: every touched pixel
        ([[2, 1, 5, 3]], 1, (0, 4), (1, 6)),  # grown by the margin
        ([[-4, -4, 3, 2]], 0, (0, 2), (0, 3)),  # cut at the picture's edge
        ([[6, 5, 99, 99]], 2, (3, 6), (4, 8)),  # grown past the far edge: cut there
    ],
)
def test_box_mask_covers_every_pixel_a_box_touches(
    boxes: list[list[float]], margin: int, rows: tuple[int, int], columns: tuple[int, int]
) -> None:
    mask = box_mask((6, 8), np.array(boxes), margin=margin)
    expected = np.zeros((6, 8), dtype=bool)
    expected[rows[0] : rows[1], columns[0] : columns[1]] = True
    assert (mask == expected).all()


def test_box_mask_of_no_boxes_and_of_several() -> None:
    assert not box_mask((4, 4), np.empty((0, 4))).any()
    both = box_mask((4, 4), np.array([[0, 0, 1, 1], [3, 3, 4, 4]]))
    assert both.sum() == 2 and both[0, 0] and both[3, 3]
