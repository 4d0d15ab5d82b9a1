"""Does the camera still show the place its zones were drawn on?

Zones are polygons in normalised image coordinates: a PTZ camera sent to another preset, or a
camera knocked to another aim, keeps them over another piece of street. Judged there, a car parked
in what is now another place was a case on the wrong place, and one still parked in the old place
was proposed `resolved` because its zone showed something else. So each camera keeps a reference
view (a grey thumbnail, WIDTH pixels wide, in its saved state), taken once its frames have agreed
with each other for `view.settle_s`, and every frame with a picture is compared with it; the rules
judge nothing while the view is moved (vision/live/rules.py) until it comes back, or an operator
accepts the new view as the reference (`accept`).

The comparison cuts both pictures into TILES and asks, tile by tile, where the reference tile lies
in the frame's (phase correlation, the occupancy model's shift measure: `phase_shift`). A tile is
in place when its peak stands within `view.max_shift` of the width of where it was. Phase
correlation ignores a global gain and offset, so day and night, dusk, infrared on or off and rain
keep every textured tile in place; traffic in front of a part of the picture takes only those tiles
(a bus over 30 % of it, a quarter of them). A shifted view moves every tile; a turn of a few degrees
moves the tiles away from its centre; another preset or another place matches none. Tiles without
texture in the reference or in the frame (sky, bare asphalt, a night sky gone black) tell nothing
and are left out. The view is the same while at least `view.min_match` of the tiles textured in
both are in place. Measured on the 50 traffic-cams
val frames at 320 px, see docs/cameras.md ("A view moved").

The reference follows slow changes of the scene (seasons, a new shop front, scaffolding): once it is
`view.refresh_s` old, a frame that shows it confidently and still, with as much detail (a night
frame never), becomes the reference (`ViewWatch._refresh`); else a camera that never moved would
drift under `view.min_match` over the months and judge nothing until an operator accepted its view.

All times are capture times in seconds.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vision.live.cameras import ViewSettings
from vision.live.occupancy import phase_shift, shrink, working_size
from vision.live.picture import DETAIL_SIGMA

WIDTH = 320  # pixels: tiles of 80 x 45 at 16:9, enough texture for a phase correlation each
TILES = (4, 4)  # columns, rows
MIN_TEXTURE = 1.0  # grey levels of fine detail (mean): a reference tile with less tells no shift
MIN_TILES = 4  # textured tiles needed to tell anything: fewer, and the view is taken as the same
STILL = 1 / 3  # of `view.max_shift` (1 px at WIDTH): the shift near zero a refresh of the reference needs


def view_thumbnail(image: np.ndarray) -> np.ndarray:
    """The BGR `image` as the grey WIDTH-pixel picture views are compared on (uint8: 57 KB at 16:9)."""
    height, width = image.shape[:2]
    small = shrink(image, working_size((width, height), min(WIDTH, width)))
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)


def _tiles(grey: np.ndarray) -> list[np.ndarray]:
    height, width = grey.shape
    columns, rows = TILES
    return [
        grey[height * r // rows : height * (r + 1) // rows, width * c // columns : width * (c + 1) // columns]
        for r in range(rows)
        for c in range(columns)
    ]


def _detail(tile: np.ndarray) -> float:
    """Mean fine detail (grey levels) of a float32 tile: the texture a shift is told by."""
    return float(np.abs(tile - cv2.GaussianBlur(tile, (0, 0), DETAIL_SIGMA)).mean())


def _tile_shifts(now: np.ndarray, reference: np.ndarray) -> list[float | None]:
    """Where each tile textured in both thumbnails lies in `now` from the reference's (pixels; None:
    not found)."""
    if reference.shape != now.shape:  # the stream changed its aspect ratio: the same view, stretched
        reference = cv2.resize(reference, now.shape[::-1], interpolation=cv2.INTER_AREA)
    return [
        phase_shift(tile_now, tile_then)
        for tile_now, tile_then in zip(
            _tiles(now.astype(np.float32)), _tiles(reference.astype(np.float32)), strict=True
        )
        if min(_detail(tile_then), _detail(tile_now)) >= MIN_TEXTURE  # a night sky gone black tells nothing
    ]


def _in_place(shifts: list[float | None], limit: float) -> float | None:
    """Share of `shifts` within `limit` pixels; None with too few to tell (a featureless picture)."""
    in_place = sum(shift is not None and shift <= limit for shift in shifts)
    return in_place / len(shifts) if len(shifts) >= MIN_TILES else None


def view_match(now: np.ndarray, reference: np.ndarray, max_shift: float) -> float | None:
    """Share of the tiles textured in both pictures that the thumbnail `now` shows in place (moved at
    most `max_shift` of the width); None with too few such tiles to tell (a featureless picture)."""
    return _in_place(_tile_shifts(now, reference), max_shift * now.shape[1])


def same_view(now: np.ndarray, reference: np.ndarray, settings: ViewSettings) -> bool:
    """Whether the thumbnail `now` shows the view of `reference` (see the module's docstring)."""
    match = view_match(now, reference, settings.max_shift)
    return match is None or match >= settings.min_match


class ViewWatch:
    """One camera's reference view: taken once its frames have settled, then every frame compared."""

    def __init__(self, settings: ViewSettings) -> None:
        self.settings = settings
        self.reference: np.ndarray | None = None
        self.reference_at: float | None = None  # capture time of the frame it was taken from
        self._candidate: np.ndarray | None = None  # the view the frames have agreed on since ...
        self._candidate_since: float | None = None
        self._latest: np.ndarray | None = None  # the last frame with a picture, for `accept`
        self._latest_at: float | None = None

    def moved(self, at: float, image: np.ndarray) -> bool:
        """Whether the frame with a picture `image` (captured at `at`) shows another view than the
        reference; none yet, it is settling: not moved."""
        now = view_thumbnail(image)
        self._latest, self._latest_at = now, at
        if self.reference is not None:
            shifts = _tile_shifts(now, self.reference)
            match = _in_place(shifts, self.settings.max_shift * now.shape[1])
            if match is not None and match < self.settings.min_match:
                return True
            self._refresh(at, now, shifts)
            return False
        if self._candidate is None or not same_view(now, self._candidate, self.settings):
            self._candidate, self._candidate_since = now, at
        elif self._candidate_since is not None and at - self._candidate_since >= self.settings.settle_s:
            self.reference, self.reference_at = now, at
            self._candidate = self._candidate_since = None
        return False

    def _refresh(self, at: float, now: np.ndarray, shifts: list[float | None]) -> None:
        """The thumbnail `now` (captured at `at`, its tile `shifts` from the reference) becomes the
        reference when the reference is `view.refresh_s` old, `now` shows it confidently (at least
        `view.refresh_match` of the tiles in place within STILL of `view.max_shift`) and with as much
        detail (at least `view.refresh_detail` of the reference's): the reference follows the
        seasons and slow changes of the scene, and a night frame never replaces a day reference."""
        if self.reference is None or (
            self.reference_at is not None and at - self.reference_at < self.settings.refresh_s
        ):
            return
        still = _in_place(shifts, STILL * self.settings.max_shift * now.shape[1])
        if still is None or still < self.settings.refresh_match:
            return
        if _detail(now.astype(np.float32)) < self.settings.refresh_detail * _detail(
            self.reference.astype(np.float32)
        ):
            return
        self.reference, self.reference_at = now, at

    def accept(self) -> float | None:
        """The view shown now becomes the reference (an operator re-aimed the camera on purpose):
        the last frame with a picture, or, before any since the start, the view the frames settle on
        next. Returns the capture time of the frame taken, None when it is yet to settle."""
        self.reference, self.reference_at = self._latest, self._latest_at
        self._candidate = self._candidate_since = None
        return self.reference_at

    def export(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "reference_at": self.reference_at,
            "candidate": self._candidate,
            "candidate_since": self._candidate_since,
        }

    def restore(self, saved: dict[str, Any] | None) -> None:
        """Take back `export`; None (a state saved before views were watched): no reference yet."""
        saved = saved or {}
        reference, candidate = saved.get("reference"), saved.get("candidate")
        self.reference = None if reference is None else np.asarray(reference, dtype=np.uint8)
        self.reference_at = saved.get("reference_at")
        self._candidate = None if candidate is None else np.asarray(candidate, dtype=np.uint8)
        self._candidate_since = saved.get("candidate_since")
