"""Where flyers can be: the surface rules on tiny drawn scenes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.detect.surfaces import (
    ground_mask,
    line_segments,
    local_directions,
    padding_mask,
    sky_mask,
    surface_mask,
    vegetation_mask,
)


def textured(
    shape: tuple[int, int], colour: tuple[int, int, int], seed: int = 0, sigma: float = 10
) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, (*shape, 3))
    return np.clip(np.array(colour, dtype=float) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("top_colour", "is_sky"),
    [
        ((235, 200, 150), True),  # blue sky (BGR)
        ((238, 238, 236), True),  # overcast grey-white
        ((200, 225, 240), False),  # bright beige plaster is warmer than neutral: a wall
    ],
)
def test_sky_is_bright_smooth_and_touches_the_top(top_colour: tuple[int, int, int], is_sky: bool) -> None:
    image = textured((120, 160), (90, 110, 130), sigma=25)  # a textured wall below
    image[:50] = top_colour
    sky = sky_mask(image)
    assert sky[:40].mean() > 0.9 if is_sky else sky[:40].mean() < 0.1
    assert sky[70:].mean() < 0.05


def test_sky_under_the_black_fill_of_a_rotated_export() -> None:
    image = textured((120, 160), (90, 110, 130), sigma=25)
    image[:50] = (235, 200, 150)
    image[:12] = 0  # the fill Roboflow leaves above a rotated photo
    assert padding_mask(image)[:12].all()
    assert sky_mask(image)[15:45].mean() > 0.9
    assert surface_mask(image)[:50].mean() < 0.1  # only the seam rows at the fill edge remain


def test_vegetation_and_not_a_yellow_wall() -> None:
    image = textured((100, 200), (60, 180, 230), sigma=8)  # yellow wall (BGR)
    image[:, 100:] = textured((100, 100), (40, 90, 45), seed=1, sigma=20)  # shaded foliage
    leaves = vegetation_mask(image)
    assert leaves[:, 110:].mean() > 0.9
    assert leaves[:, :90].mean() < 0.05


def test_ground_is_squashed_texture_reaching_the_bottom() -> None:
    image = textured((200, 200), (120, 120, 120), sigma=3)
    for x in range(0, 200, 6):  # a wall of vertical boards above
        cv2.line(image, (x, 0), (x, 119), (80, 80, 80), 1)
    for y in range(120, 200, 4):  # paving seen at a grazing angle: horizontal seams
        cv2.line(image, (0, y), (199, y), (80, 80, 80), 1)
    ground = ground_mask(image)
    assert ground[140:190].mean() > 0.8
    assert ground[:100].mean() == 0


def test_vertical_edges_and_local_tilt() -> None:
    image = np.full((200, 200, 3), 180, np.uint8)
    cv2.line(image, (60, 20), (70, 180), (30, 30, 30), 3)  # a pole leaning a little
    cv2.line(image, (100, 60), (190, 80), (30, 30, 30), 3)  # a ledge in perspective
    lines = line_segments(image)
    assert len(lines.vertical) and len(lines.horizontal)
    up, across = local_directions(lines, (100, 100), radius=150)
    assert up == pytest.approx(np.degrees(np.arctan2(160, 10)), abs=3)
    assert across == pytest.approx(np.degrees(np.arctan2(20, 90)), abs=3)
    assert local_directions(lines, (1000, 1000), radius=10) == (90.0, 0.0)  # nothing near: upright
