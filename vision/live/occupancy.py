"""Static-object occupancy: something new stands still in a zone, whatever its class (issue 12).

No labelled data exists for stalls, goods outside shops or dumped materials, but a fixed camera
still sees them: pixels that differ from the long-term background of the place while agreeing with
the short-term one (they stopped changing) form static-foreground blobs.

- Long-term background: per-pixel median of `long_samples` frames sampled `long_sample_s` apart, so
  a walker or a passing car in one sample never enters it. A sample takes the frame only where no
  detector box and no held static blob stands; elsewhere it keeps the background, so a stall that
  stays all night does not melt into it before (or after) its case (up to `hold_max_s`).
- Lighting: a per-channel gain between frame and background, measured on background pixels,
  compensates global changes (clouds, dusk) before differencing; the threshold scales with it.
- Short-term background: running average with time constant `short_tau_s` on capture time;
  walkers, cars driving and rain streaks differ from it and are not static.
- Ghosts (something that was in the background left): the blob's outline has edges in the
  background but not in the frame; the background there is replaced at once.
- Learning: a model that starts with no history takes its first frame as the background of every
  sample and judges nothing until real samples are the majority of the median (`long_sample_s` x
  half of `long_samples`, 10 minutes by default); nothing is held meanwhile, and what still stands
  out when judging begins was never seen arriving (the ghost of a pile that stood there from the
  start and left while learning, or a stall set up in those minutes): it is taken as background.
  It starts over after a gap longer than `hold_max_s`, and when the view changed: what the camera
  has shown for the last seconds (the short-term background) is the long-term one shifted by
  `VIEW_SHIFT_PX` or more (the camera knocked to another aim), or has lost or gained its colours
  (the infrared night picture switched on or off). Judged against the old background, either made
  the whole zone one false case, `min_dwell_s` later (every night, for the infrared switch).
  A frame that shows no picture (the signal lost, the lens covered: vision/live/picture.py) never
  reaches the model (vision/live/rules.py): judged, ten black minutes were a case; learned, the
  street coming back was one.
  A restarted service restores the models
  instead (vision/live/state.py), so what stood there before the restart is neither hidden nor
  left behind as a ghost.

Works on the frame scaled to `width` pixels; per-frame cost is a few small array operations.
All times are capture times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vision.core.boxes import box_mask
from vision.live.cameras import Ground, OccupancySettings, Zone
from vision.live.zones import Size, polygon_mask

MIN_DIFF_THRESHOLD = 8.0  # grey levels: below this, sensor noise at dusk passes for objects
GHOST_RATIO = 1.5  # a blob this much more visible in the background than in the frame is a ghost
VIEW_SHIFT_PX = 2.0  # at the working size (320 px): the camera was knocked to another aim
VIEW_SHIFT_RESPONSE = 0.1  # phase correlation peak below this: no texture to tell a shift by (nor a match)
SATURATION_CHANGE = 0.3  # mean saturation this share of before (or the other way): infrared on or off
MIN_SATURATION = 0.05  # a view this grey in daylight has no colours to lose
BOX_GROW = 2  # working-size pixels around a detection box kept out: its edge blurs at the working size
GAIN_SAMPLE_STEP = 6  # gain and light are measured on every 6th pixel each way: ~1600 at 320x180
_KERNEL_3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_KERNEL_5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


@dataclass(frozen=True)
class Blob:
    box: np.ndarray  # xyxy in frame pixels
    area_px: int  # at the model's working size


@dataclass(frozen=True)
class ZoneOccupancy:
    zone_id: str
    fraction: float  # of the zone's area
    area_m2: float | None  # with a ground homography
    box: np.ndarray | None  # union of the static blobs in the zone, frame pixels
    learning: bool = False  # the background is still being learned: nothing is judged yet


def working_size(frame_size: Size, width: int) -> Size:
    """The size the background models work at: `width` wide, the frame's aspect ratio."""
    w, h = frame_size
    return width, max(8, round(h * width / w))


def shrink(image: np.ndarray, size: Size) -> np.ndarray:
    """`image` scaled down to `size` as INTER_AREA would, at a fraction of its cost on big frames:
    halvings with INTER_LINEAR (exactly a 2x2 mean) while the frame is 4x the target or more, so
    the final INTER_AREA step still averages 2x2 pixels or more."""
    while image.shape[1] >= 4 * size[0] and image.shape[0] >= 4 * size[1]:
        half = (image.shape[1] // 2, image.shape[0] // 2)
        image = cv2.resize(image, half, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def channel_max_absdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel, the largest absolute difference over the colour channels (float32 BGR inputs)."""
    blue, green, red = cv2.split(cv2.absdiff(a, b))
    return cv2.max(cv2.max(blue, green), red)


def _contrast(image: np.ndarray, inside: np.ndarray, ring: np.ndarray) -> float:
    """How unlike its surroundings a region looks: largest channel gap between median colours."""
    if not ring.any():
        return 0.0
    return float(np.abs(np.median(image[inside], axis=0) - np.median(image[ring], axis=0)).max())


def saturation(image: np.ndarray) -> float:
    """Mean colour saturation of a BGR float image, 0 (grey, an infrared picture) to 1 (on every
    GAIN_SAMPLE_STEP-th pixel: the whole picture cost twice the rest of the model)."""
    pick = image[::GAIN_SAMPLE_STEP, ::GAIN_SAMPLE_STEP]
    top, bottom = pick.max(axis=2), pick.min(axis=2)
    return float(np.mean((top - bottom) / np.maximum(top, 16.0)))


def phase_shift(now: np.ndarray, before: np.ndarray) -> float | None:
    """How far (pixels) the grey float32 picture `now` lies shifted from `before`, by phase
    correlation: a global gain or offset of the light changes nothing, a part covered lowers the
    peak. None when the peak is under VIEW_SHIFT_RESPONSE: no texture to tell a shift by, or no
    part of `before` in `now` at all. Shared by the occupancy model and vision/live/view.py."""
    window = cv2.createHanningWindow(now.shape[::-1], cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(now, before, window)
    return math.hypot(dx, dy) if response >= VIEW_SHIFT_RESPONSE else None


def view_changed(now: np.ndarray, before: np.ndarray) -> bool:
    """`now` (the short-term background) shows another view than `before` (the long-term one): shifted
    by VIEW_SHIFT_PX or more, or its colours gone or come back (infrared on or off)."""
    shift = phase_shift(cv2.cvtColor(now, cv2.COLOR_BGR2GRAY), cv2.cvtColor(before, cv2.COLOR_BGR2GRAY))
    if shift is not None and shift >= VIEW_SHIFT_PX:
        return True
    low, high = sorted((saturation(now), saturation(before)))
    return high >= MIN_SATURATION and low < SATURATION_CHANGE * high


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with enclosed holes filled: a bag's pale middle, like the pavement, is still the bag
    (and must not be learned into the background while the bag stands there)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    outside = padded.copy()
    cv2.floodFill(outside, None, (0, 0), 1)  # everything reachable from the border without crossing
    return mask | (outside[1:-1, 1:-1] == 0)


def _outline(image: np.ndarray, edge: np.ndarray) -> float:
    """Mean colour gradient (largest over channels) along a blob's edge."""
    if not edge.any():
        return 0.0
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.magnitude(gx.reshape(-1), gy.reshape(-1)).reshape(image.shape).max(axis=2)
    return float(magnitude[edge].mean())


def ground_area_map(ground: Ground, size: Size) -> np.ndarray:
    """Square metres of ground under each pixel of an image of `size` (0 where it is not ground)."""
    width, height = size
    homography = cv2.getPerspectiveTransform(
        np.asarray(ground.image, dtype=np.float32), np.asarray(ground.ground_m, dtype=np.float32)
    )
    xs, ys = np.meshgrid(np.arange(width + 1) / width, np.arange(height + 1) / height)
    corners = np.stack([xs, ys], axis=-1).reshape(-1, 1, 2).astype(np.float64)
    projected = cv2.perspectiveTransform(corners, homography).reshape(height + 1, width + 1, 2)
    x, y = projected[..., 0], projected[..., 1]
    # Shoelace area of each pixel's quadrilateral (corners a b c d clockwise in the image).
    ax, ay, bx, by = x[:-1, :-1], y[:-1, :-1], x[:-1, 1:], y[:-1, 1:]
    cx, cy, dx, dy = x[1:, 1:], y[1:, 1:], x[1:, :-1], y[1:, :-1]
    area = 0.5 * np.abs((ax * by - bx * ay) + (bx * cy - cx * by) + (cx * dy - dx * cy) + (dx * ay - ax * dy))
    return np.where(np.isfinite(area) & (area < 1e3), area, 0.0)


class StaticForeground:
    """Long- and short-term backgrounds of one camera and their static-foreground blobs."""

    def __init__(self, settings: OccupancySettings) -> None:
        self.settings = settings
        self.size: Size | None = None
        self.scale = 1.0  # frame pixels -> working pixels
        self.gain = np.ones(3, dtype=np.float32)  # frame / long-term background, now
        self.light = np.ones(3, dtype=np.float32)  # frame / reference (the first frame), now
        self.mask = np.zeros((0, 0), dtype=bool)  # static foreground of the latest frame
        self.held = np.zeros((0, 0), dtype=bool)  # kept out of the long-term background
        self._reference = np.zeros((0, 0, 3), dtype=np.float32)
        self._samples = np.zeros((0, 0, 0, 3), dtype=np.uint8)
        self._long = np.zeros((0, 0, 3), dtype=np.float32)
        self._short = np.zeros((0, 0, 3), dtype=np.float32)
        # light / gain when a pixel was frozen: its long-term value x light now / this = its background now
        self._hold_light = np.zeros((0, 0, 3), dtype=np.float32)
        self._held_since = np.zeros((0, 0), dtype=np.float32)  # seconds since start; NaN: not held
        self._held_last = np.zeros((0, 0), dtype=np.float32)  # when it was static foreground last
        self._next_sample = 0
        self._last_sample = 0.0
        self._last_time = 0.0
        self._origin = 0.0
        self._learned_at = math.inf  # capture time from which the long-term background is trusted
        self._judging = False  # learning is over and what stood out then was taken as background
        self.view_changes = 0  # times the background was learned anew because the whole view changed

    @property
    def learning(self) -> bool:
        """No history yet (the long-term background is mostly the first frame): nothing is judged."""
        return self._last_time < self._learned_at

    @property
    def learn_s(self) -> float:
        """Until real samples are the majority of the long-term median."""
        return self.settings.long_sample_s * math.ceil(self.settings.long_samples / 2)

    @property
    def nbytes(self) -> int:
        """Memory held by the models (bounded: fixed by `width` and `long_samples`)."""
        arrays = (
            self._reference,
            self._samples,
            self._long,
            self._short,
            self._hold_light,
            self._held_since,
            self._held_last,
            self.mask,
            self.held,
        )
        return sum(a.nbytes for a in arrays)

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        assert self.size is not None
        small = shrink(frame, self.size)
        return cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32)

    def _start(self, frame: np.ndarray, at: float) -> None:
        height, width = frame.shape[:2]
        self.size = working_size((width, height), self.settings.width)
        self.scale = self.size[0] / width
        small = self._prepare(frame)
        shape = small.shape[:2]
        self._reference = small.copy()
        self._samples = np.repeat(small.astype(np.uint8)[None], self.settings.long_samples, axis=0)
        self._long = small.copy()
        self._short = small.copy()
        self._hold_light = np.ones(small.shape, dtype=np.float32)
        self._held_since = np.full(shape, np.nan, dtype=np.float32)
        self._held_last = np.full(shape, -np.inf, dtype=np.float32)
        self.mask = np.zeros(shape, dtype=bool)
        self.held = np.zeros(shape, dtype=bool)
        self.gain = np.ones(3, dtype=np.float32)
        self.light = np.ones(3, dtype=np.float32)
        self._last_sample = self._last_time = self._origin = at
        self._next_sample = 0
        self._learned_at = at + self.learn_s
        self._judging = False

    def _box_mask(self, boxes: np.ndarray) -> np.ndarray:
        """Frame-pixel boxes as a mask at working size, grown by BOX_GROW pixels."""
        assert self.size is not None
        width, height = self.size
        return box_mask((height, width), np.asarray(boxes, dtype=np.float64) * self.scale, margin=BOX_GROW)

    def _refit(self, size: Size) -> None:
        """The stream changed its aspect ratio (a D1 sub-stream to the 16:9 main stream, say): the
        models are stretched to the new working size, as zones are by their normalised coordinates
        (the same view). Starting over would learn a standing stall into the background and clear
        its case with a false after-photo."""

        def fit(image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
            return cv2.resize(image, size, interpolation=interpolation)

        self._reference, self._long, self._short = fit(self._reference), fit(self._long), fit(self._short)
        self._hold_light = fit(self._hold_light, cv2.INTER_NEAREST)
        self._samples = np.stack([fit(sample) for sample in self._samples])
        self._held_since = fit(self._held_since, cv2.INTER_NEAREST)
        self._held_last = fit(self._held_last, cv2.INTER_NEAREST)
        self.mask = fit(self.mask.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
        self.held = fit(self.held.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
        self.size = size

    def _ratio(
        self, small: np.ndarray, base: np.ndarray, usable: np.ndarray, previous: np.ndarray
    ) -> np.ndarray:
        """Per-channel median of frame / base over usable pixels: how much brighter the scene is."""
        step = GAIN_SAMPLE_STEP
        pick = usable[::step, ::step]
        if pick.sum() < 50:
            return previous
        ratios = small[::step, ::step][pick] / np.maximum(base[::step, ::step][pick], 8.0)
        return np.clip(np.median(ratios, axis=0), 0.05, 20.0).astype(np.float32)

    def _blobs(self, candidate: np.ndarray, small: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Clean the candidate mask into blobs; ghosts are absorbed into the background at once.

        A ghost (something of the background left) shows itself in the background, not in the
        frame; an object the other way round. Two tests must both say ghost, since absorbing a
        real object loses a case: the outline (colour gradient along the blob's edge) is stronger
        in the background, and inside and around the blob (median colours) differ more in the
        background. Either alone is fooled: a dark bag on a dark, busy spot by the colours; a
        stall whose edge runs along a kerb by the outline. A piece of an object already held (a car
        passing in front cuts it) is never a ghost.
        """
        mask = cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_OPEN, _KERNEL_3)
        if not cv2.countNonZero(mask):  # the usual frame: nothing static and new
            return np.zeros_like(candidate)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _KERNEL_5)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = np.zeros(count, dtype=bool)
        for label in range(1, count):
            if stats[label, cv2.CC_STAT_AREA] < self.settings.min_blob_px:
                continue
            x, y, w, h = stats[label, :4]
            window = (slice(max(0, y - 4), y + h + 4), slice(max(0, x - 4), x + w + 4))
            blob = (labels[window] == label).astype(np.uint8)
            inside = blob.astype(bool)
            ring = (cv2.dilate(blob, _KERNEL_5, iterations=1) - blob).astype(bool)
            edge = (cv2.dilate(blob, _KERNEL_3) - cv2.erode(blob, _KERNEL_3)).astype(bool)
            frame_part, background_part = small[window], background[window]
            outline_frame, outline_background = _outline(frame_part, edge), _outline(background_part, edge)
            contrast_frame = _contrast(frame_part, inside, ring)
            contrast_background = _contrast(background_part, inside, ring)
            known = self.held.size and self.held[window][inside].mean() >= 0.5  # part of a held object
            if (
                not known
                and outline_background > GHOST_RATIO * outline_frame
                and contrast_background > GHOST_RATIO * contrast_frame
                and contrast_background > MIN_DIFF_THRESHOLD
            ):
                ghost = np.zeros_like(candidate)
                ghost[window] = inside
                self._absorb(ghost, small)
                continue
            keep[label] = True
        return fill_holes(keep[labels])

    def _absorb(self, region: np.ndarray, small: np.ndarray) -> None:
        self._samples[:, region] = small[region].astype(np.uint8)
        self._long[region] = small[region]

    def _hold(self, at: float) -> None:
        """Freeze the background under static foreground (and for gap_s after, so a walker's
        hole in a stall is not learned), up to hold_max_s; thaw the rest to today's light."""
        now = np.float32(at - self._origin)  # float32 maps keep seconds since start, not epoch times
        # with a margin: the blob's border flickers, and a border learned bit by bit eats the blob
        margin = cv2.dilate(self.mask.astype(np.uint8), _KERNEL_5, iterations=2).astype(bool)
        self._held_last[margin] = now
        held = now - self._held_last <= self.settings.gap_s
        self._held_since = np.where(held, np.fmin(self._held_since, now), np.nan).astype(np.float32)
        held &= ~(now - self._held_since > self.settings.hold_max_s)  # NaN (not held) compares False
        frozen = held & ~self.held
        # The long-term background lags the light (a median of samples minutes apart): at freezing it
        # looked like long x gain, and the light changes from there on, not from the long's own light.
        self._hold_light[frozen] = self.light / self.gain
        thawed = self.held & ~held
        if thawed.any():  # relit to now, then back to the scale of the rest of the long-term background
            relight = self.light / (self._hold_light[thawed] * self.gain)
            self._samples[:, thawed] = np.clip(self._samples[:, thawed] * relight, 0, 255).astype(np.uint8)
            self._long[thawed] *= relight
        self.held = held

    def _sample(self, at: float, small: np.ndarray, learn: np.ndarray) -> None:
        """A long-term sample: the frame where it may be learned; elsewhere the slot keeps its value."""
        slot = self._samples[self._next_sample]
        slot[learn] = np.clip(small[learn], 0, 255).astype(np.uint8)
        self._next_sample = (self._next_sample + 1) % len(self._samples)
        self._long = np.median(self._samples, axis=0).astype(np.float32)
        self._last_sample = at

    def update(self, at: float, frame: np.ndarray, ignore: np.ndarray, keep_out: np.ndarray) -> np.ndarray:
        """Take one BGR frame captured at `at`; returns the static-foreground mask (working size).

        `ignore`: frame-pixel boxes never counted as occupancy (vehicles, people) nor learned;
        `keep_out`: further boxes not learned into the background (any detection).
        """
        height, width = frame.shape[:2]
        if self.size is None or at - self._last_time > self.settings.hold_max_s:
            self._start(frame, at)  # no history, or too old to trust: learn the place anew
            return self.mask
        size = working_size((width, height), self.settings.width)
        if size != self.size:
            self._refit(size)
        self.scale = self.size[0] / width  # same aspect ratio at another resolution: the models still fit
        small = self._prepare(frame)
        ignored = self._box_mask(ignore)
        usable = ~ignored & ~self.held
        self.gain = self._ratio(small, self._long, usable, self.gain)
        self.light = self._ratio(small, self._reference, usable, self.light)
        background = self._long * self.gain
        held = self.held
        if held.any():
            background[held] = self._long[held] * (self.light / self._hold_light[held])
        # contrast falls with the light (dusk): so does the threshold, down to the noise floor
        threshold = max(MIN_DIFF_THRESHOLD, self.settings.diff_threshold * min(1.0, float(self.light.mean())))
        differs = channel_max_absdiff(small, background) > threshold
        stable = channel_max_absdiff(small, self._short) < self.settings.stable_threshold
        if self._judging and view_changed(self._short, self._long):
            self.view_changes += 1  # the camera moved or went infrared: the old background is of no use
            self._start(frame, at)
            return self.mask
        self.mask = self._blobs(differs & stable & ~ignored, small, background)
        if at >= self._learned_at and not self._judging:  # not seen arriving: background
            self._absorb(self.mask, small)
            self.mask = np.zeros_like(self.mask)
            self._judging = True
        if self._judging:  # while learning nothing is held: what stands still long is learned
            self._hold(at)
        if at - self._last_sample >= self.settings.long_sample_s:
            self._sample(at, small, ~self.held & ~ignored & ~self._box_mask(keep_out))

        alpha = 1.0 - math.exp(-max(at - self._last_time, 0.0) / self.settings.short_tau_s)
        cv2.accumulateWeighted(small, self._short, alpha)  # short += alpha * (small - short)
        self._last_time = at
        return self.mask

    _SAVED = (
        "_reference",
        "_samples",
        "_long",
        "_short",
        "_hold_light",
        "_held_since",
        "_held_last",
        "mask",
        "held",
        "gain",
        "light",
    )

    def export(self) -> dict[str, Any] | None:
        """The models, for vision/live/state.py (None before the first frame)."""
        if self.size is None:
            return None
        times = {"next_sample": self._next_sample, "last_sample": self._last_sample}
        times |= {"last_time": self._last_time, "origin": self._origin, "learned_at": self._learned_at}
        return {
            "width": self.settings.width,
            "long_samples": self.settings.long_samples,
            "size": list(self.size),
            "scale": self.scale,
            **times,
            **{name.lstrip("_"): getattr(self, name) for name in self._SAVED},
        }

    def restore(self, saved: dict[str, Any] | None) -> None:
        """Take back exported models made with the same width and number of samples (else the
        camera learns its place anew)."""
        if saved is None or (saved["width"], saved["long_samples"]) != (
            self.settings.width,
            self.settings.long_samples,
        ):
            return
        for name in self._SAVED:
            setattr(self, name, np.asarray(saved[name.lstrip("_")]))
        self.size = (int(saved["size"][0]), int(saved["size"][1]))
        self.scale = float(saved["scale"])
        self._next_sample = int(saved["next_sample"])
        self._last_sample, self._last_time = float(saved["last_sample"]), float(saved["last_time"])
        self._origin, self._learned_at = float(saved["origin"]), float(saved["learned_at"])
        self._judging = self._last_time >= self._learned_at

    def blobs(self) -> list[Blob]:
        """The latest static blobs as frame-pixel boxes."""
        count, _, stats, _ = cv2.connectedComponentsWithStats(self.mask.astype(np.uint8), connectivity=8)
        return [
            Blob(
                box=np.array([x, y, x + w, y + h], dtype=np.float64) / self.scale,
                area_px=int(area),
            )
            for x, y, w, h, area in stats[1:count]
        ]


class ZoneMeter:
    """How much of one zone the static foreground covers (fraction, and m² with a homography)."""

    def __init__(self, zone: Zone, ground: Ground | None) -> None:
        self.zone = zone
        self.ground = ground
        self._size: Size | None = None
        self._mask = np.zeros((0, 0), dtype=bool)
        self._area_map: np.ndarray | None = None

    def _at(self, size: Size) -> None:
        if size != self._size:
            self._mask = polygon_mask(self.zone.polygon, size)
            self._area_map = ground_area_map(self.ground, size) * self._mask if self.ground else None
            self._size = size

    def measure(self, foreground: StaticForeground) -> ZoneOccupancy:
        if foreground.size is None:
            return ZoneOccupancy(self.zone.id, 0.0, None, None, learning=True)
        self._at(foreground.size)
        inside = foreground.mask & self._mask
        fraction = float(inside.sum()) / max(int(self._mask.sum()), 1)
        area_m2 = float(self._area_map[inside].sum()) if self._area_map is not None else None
        box = None
        if inside.any():
            ys, xs = np.nonzero(inside)
            box = (
                np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
                / foreground.scale
            )
        return ZoneOccupancy(self.zone.id, fraction, area_m2, box, learning=foreground.learning)

    def occupied(self, reading: ZoneOccupancy) -> bool:
        rule = self.zone.rule
        if rule.min_area_m2 is not None:
            return reading.area_m2 is not None and reading.area_m2 >= rule.min_area_m2
        return rule.min_area is not None and reading.fraction >= rule.min_area


class OccupancyClock:
    """Since when a zone has been occupied. Only an observed clear spell longer than `gap_s` ends an
    occupation: a bus in front for a few frames does not, and neither do frames that arrive a
    minute apart (snapshot cameras)."""

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self.since: float | None = None
        self.last: float | None = None

    def export(self) -> dict[str, float | None]:
        return {"since": self.since, "last": self.last}

    def restore(self, saved: dict[str, float | None]) -> None:
        self.since, self.last = saved["since"], saved["last"]

    def resume(self, at: float) -> None:
        """The camera saw nothing before `at` (its picture was lost): a clear spell counts from `at`."""
        if self.since is not None:
            self.last = at

    def forget(self) -> None:
        """Nobody watched for longer than the camera's gap tolerance: an occupation starts anew."""
        self.since = self.last = None

    def update(self, at: float, occupied: bool) -> float | None:
        """The start of the current occupation, or None when the zone is (now) clear."""
        if occupied:
            if self.since is None:
                self.since = at
            self.last = at
            return self.since
        if self.last is not None and at - self.last > self.gap_s:
            self.since = self.last = None
        return None
