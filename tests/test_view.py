"""Whether a frame shows the camera's reference view (vision/live/view.py), on real street frames.

Each traffic-cams val frame below is the reference; the table changes it as a fixed camera's picture
changes over a day (light, infrared, rain, noise, traffic in front, a jitter of the mount) or as it
does when the camera is turned (shifted, rotated, another preset showing another street).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from streets import DATASETS, GREY_CAR, labelled_crop

from vision.live.cameras import ViewSettings
from vision.live.state import decode, encode
from vision.live.view import ViewWatch, same_view, view_thumbnail

SIZE = (640, 360)
FRAMES = sorted((DATASETS / "traffic-cams" / "images" / "val").glob("*.jpg"))[::5]  # 10 cameras' frames

Change = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (frame, another camera's frame) -> frame


def _noise(frame: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noisy = frame + np.random.default_rng(seed).normal(0, sigma, frame.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _moved(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(frame, matrix, SIZE, borderMode=cv2.BORDER_REFLECT)


def shifted(dx: float, dy: float = 0.0) -> Change:
    """The picture moved by dx, dy (shares of the width and height)."""
    return lambda frame, _: _moved(frame, np.float32([[1, 0, dx * SIZE[0]], [0, 1, dy * SIZE[1]]]))


def rotated(degrees: float) -> Change:
    return lambda frame, _: _moved(frame, cv2.getRotationMatrix2D((SIZE[0] / 2, SIZE[1] / 2), degrees, 1.0))


def infrared(frame: np.ndarray, _: np.ndarray) -> np.ndarray:
    """The night picture: grey, from the red and near-infrared end (plants bright), contrast stretched."""
    grey = np.clip((frame[:, :, 2] * 0.7 + frame[:, :, 1] * 0.3 - 60) * 1.4, 0, 255).astype(np.uint8)
    return cv2.merge([grey, grey, grey])


def rain(frame: np.ndarray, _: np.ndarray) -> np.ndarray:
    """Streaks over the picture, a veil of spray, softened."""
    wet = frame.astype(np.float32)
    rng = np.random.default_rng(1)
    for x, y in zip(rng.integers(0, SIZE[0], 300), rng.integers(0, SIZE[1], 300), strict=True):
        cv2.line(wet, (int(x), int(y)), (int(x) + 3, int(y) + 20), (200, 200, 200), 1)
    return np.clip(cv2.GaussianBlur(wet, (3, 3), 0) * 0.8 + 30, 0, 255).astype(np.uint8)


def bus_in_front(frame: np.ndarray, _: np.ndarray) -> np.ndarray:
    """A vehicle close to the camera covering 30 % of the picture (a real car's crop, enlarged)."""
    covered = frame.copy()
    width = int(SIZE[0] * 0.6)
    height = int(0.3 * SIZE[0] * SIZE[1] / width)
    covered[SIZE[1] - height - 10 : SIZE[1] - 10, 50 : 50 + width] = cv2.resize(
        labelled_crop(*GREY_CAR), (width, height)
    )
    return covered


def night_sky(frame: np.ndarray, _: np.ndarray) -> np.ndarray:
    """Night under street lamps: the upper half (sky, trees, roofs) gone an even black in the camera's
    JPEG, the lit road below darker and grainy."""
    dark = np.clip(frame * 0.4 + 5, 0, 255).astype(np.uint8)
    dark[: SIZE[1] // 2] = 4
    return _noise(dark, 2)


SAME: dict[str, Change] = {
    "sensor noise": lambda frame, _: _noise(frame, 12),
    "jitter of 1.5 px": shifted(1.5 / SIZE[0], 1 / SIZE[1]),
    "night (x 0.25)": lambda frame, _: _noise(np.clip(frame * 0.25 + 5, 0, 255).astype(np.uint8), 6),
    "night, the sky gone black": night_sky,
    "bright sun": lambda frame, _: np.clip(frame * 1.6 + 20, 0, 255).astype(np.uint8),
    "infrared grey": infrared,
    "rain": rain,
    "a bus over 30 %": bus_in_front,
}
MOVED: dict[str, Change] = {
    "shifted 8 %": shifted(0.08),
    "shifted 3 % down": shifted(0.0, 0.03),
    "rotated 5 deg": rotated(5),
    "rotated 3 deg": rotated(3),
    "another preset (another street)": lambda _, other: other,
}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    if not FRAMES:
        pytest.skip(f"no traffic-cams frames under {DATASETS}")
    return [cv2.resize(cv2.imread(str(path)), SIZE) for path in FRAMES]


@pytest.mark.parametrize(
    ("change", "moved"),
    [*((c, False) for c in SAME.values()), *((c, True) for c in MOVED.values())],
    ids=[*SAME, *MOVED],
)
def test_the_same_place_is_told_from_a_moved_view(
    frames: list[np.ndarray], change: Change, moved: bool
) -> None:
    settings = ViewSettings()
    for k, frame in enumerate(frames):
        other = frames[(k + 1) % len(frames)]
        now = view_thumbnail(change(frame, other))
        assert same_view(now, view_thumbnail(frame), settings) is not moved, FRAMES[k].name


def test_the_reference_is_taken_once_the_frames_settle_and_kept_with_the_state(
    frames: list[np.ndarray],
) -> None:
    """No reference while the view still changes (a PTZ camera on its way to its preset); once the
    frames have agreed for `settle_s` it is taken, and travels with the camera's saved state. A state
    saved before views were watched has none: it settles anew."""
    watch = ViewWatch(ViewSettings(settle_s=30))
    street, other = frames[0], frames[1]
    for t in range(0, 36, 2):  # turning: another view every few frames, the last at 34 s
        assert watch.moved(float(t), _noise(other if t % 8 < 4 else street, 3, t)) is False
    assert watch.reference is None
    for t in range(36, 72, 2):  # settled from 36 s
        assert watch.moved(float(t), _noise(street, 3, t)) is False
        assert watch.reference_at == (66.0 if t >= 66 else None)
    assert watch.moved(72.0, other) is True
    restored = ViewWatch(ViewSettings(settle_s=30))
    restored.restore(decode(encode({"view": watch.export()}))["view"])
    assert restored.reference_at == 66.0 and restored.moved(74.0, other) is True
    assert restored.moved(76.0, _noise(street, 3, 76)) is False
    old = ViewWatch(ViewSettings())
    old.restore(None)
    assert old.reference is None and old.moved(0.0, other) is False
