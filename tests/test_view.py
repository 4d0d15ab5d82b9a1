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


DAY = 86400.0
NIGHT: Change = SAME["night (x 0.25)"]


def _changed(frame: np.ndarray, other: np.ndarray, tiles: int) -> np.ndarray:
    """The street with its first `tiles` 4 x 4 tiles (row by row) showing `other` instead: scaffolding,
    a new shop front, foliage grown, a tile more every day."""
    changed = frame.copy()
    height, width = SIZE[1] // 4, SIZE[0] // 4
    for k in range(tiles):
        r, c = divmod(k, 4)
        changed[r * height : (r + 1) * height, c * width : (c + 1) * width] = other[
            r * height : (r + 1) * height, c * width : (c + 1) * width
        ]
    return changed


def _day(watch: ViewWatch, day: int, street: np.ndarray) -> list[bool]:
    """A day's frames of the fixed camera, the night at x 0.25 at midnight and three at noon (60 s of
    agreeing frames: the first day's reference): whether each reads as moved."""
    at = [day * DAY, *(day * DAY + 12 * 3600.0 + second for second in (0, 30, 60))]
    pictures = [NIGHT(street, street), street, street, street]
    return [watch.moved(t, _noise(p, 3, day)) for t, p in zip(at, pictures, strict=True)]


@pytest.mark.parametrize(
    ("refresh_s", "moved"), [(DAY, False), (1e12, True)], ids=["refreshed daily", "never refreshed"]
)
def test_the_reference_follows_a_scene_changing_slowly(
    frames: list[np.ndarray], refresh_s: float, moved: bool
) -> None:
    """A tile of the street changes a day for 12 days: the reference refreshed once a day (by day,
    never by the night frames) follows it and the camera stays judged; kept from the first day, the
    view reads as moved by the 12th, a fixed camera that never moved judging nothing."""
    for k, street in enumerate(frames):
        watch = ViewWatch(ViewSettings(refresh_s=refresh_s))
        days = [_day(watch, day, _changed(street, frames[(k + 1) % len(frames)], day)) for day in range(13)]
        assert days[-1][-1] is moved, FRAMES[k].name
        assert moved or not any(map(any, days)), FRAMES[k].name
        assert moved or watch.reference_at == 12 * DAY + 12 * 3600.0, FRAMES[k].name  # noon, not midnight


NOT_REFRESHED: dict[str, Change] = {
    "night (x 0.25)": NIGHT,
    "night, the sky gone black": night_sky,
    "jitter of 3 px (in place, not still)": shifted(3 / SIZE[0]),
    "a bus over 30 %": bus_in_front,
    **MOVED,
}


@pytest.mark.parametrize(
    ("change", "age", "refreshed"),
    [
        (lambda frame, _: frame, DAY, True),
        (lambda frame, _: frame, DAY / 2, False),
        *((change, DAY, False) for change in NOT_REFRESHED.values()),
    ],
    ids=["the street by day, a day on", "the street by day, half a day on", *NOT_REFRESHED],
)
def test_only_a_frame_of_the_same_view_as_detailed_refreshes_the_reference(
    frames: list[np.ndarray], change: Change, age: float, refreshed: bool
) -> None:
    """A day after the reference, the same street by day replaces it; a night frame (less detail: the
    next day would be judged against it), a view shifted or turned even within `view.max_shift`,
    another view, or a picture half covered never does, nor anything before `view.refresh_s`."""
    for k, street in enumerate(frames):
        watch = ViewWatch(ViewSettings(settle_s=30))
        for t in (0.0, 30.0):
            watch.moved(t, _noise(street, 3, int(t)))
        reference = watch.reference
        watch.moved(30 + age, _noise(change(street, frames[(k + 1) % len(frames)]), 3, 2))
        assert (watch.reference_at == 30 + age) is refreshed, FRAMES[k].name
        assert (watch.reference is not reference) is refreshed, FRAMES[k].name
        assert watch.moved(31 + age, _noise(street, 3, 3)) is False, FRAMES[k].name  # by day: the same view


def test_a_refreshed_reference_is_kept_with_the_state(frames: list[np.ndarray]) -> None:
    """The refreshed reference and its capture time travel with the saved state (as the first one):
    restored, it is not refreshed again before `view.refresh_s` from it. A state saved with a
    reference and no capture time of it is refreshed by the next frame that may."""
    street = frames[0]
    watch = ViewWatch(ViewSettings(settle_s=30))
    for t in (0.0, 30.0, 30 + DAY):
        watch.moved(t, _noise(street, 3, int(t)))
    restored = ViewWatch(ViewSettings(settle_s=30))
    restored.restore(decode(encode({"view": watch.export()}))["view"])
    assert restored.reference_at == 30 + DAY and watch.reference is not None
    assert np.array_equal(restored.reference, watch.reference)
    restored.moved(30 + 1.5 * DAY, _noise(street, 3, 4))
    assert restored.reference_at == 30 + DAY
    restored.moved(30 + 2 * DAY, _noise(street, 3, 5))
    assert restored.reference_at == 30 + 2 * DAY
    undated = ViewWatch(ViewSettings())
    undated.restore({"reference": watch.reference})
    assert undated.reference_at is None and undated.moved(60.0, _noise(street, 3, 6)) is False
    assert undated.reference_at == 60.0
