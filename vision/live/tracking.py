"""Tracking on capture time: ByteTrack (Roboflow `trackers`, the successor of `sv.ByteTrack`).

supervision 0.26+ moved its trackers to the `trackers` package; its ByteTrack takes the frame's
capture time, so the Kalman step and the lost-track budget follow real seconds even when a camera
delivers 2 fps with gaps. Frames must come in strictly increasing capture time; the caller
(vision/live/rules.py) keeps late frames away from here.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from vision.live.cameras import TrackerSettings

REFERENCE_FPS = 30.0  # ByteTrack counts its lost-track buffer in frames of a 30 fps video


def subset(detections: sv.Detections, keep: np.ndarray) -> sv.Detections:
    """`detections[keep]` typed as Detections (supervision's __getitem__ is typed as a union)."""
    return cast(sv.Detections, detections[keep])


def ids(values: np.ndarray | None, count: int) -> np.ndarray:
    """An optional per-detection id array (class_id, tracker_id) with -1 where it is missing."""
    return np.full(count, -1, dtype=int) if values is None else values.astype(int)


class CaptureTimeTracker:
    """Assigns `tracker_id` to detections of one camera, frame after frame."""

    def __init__(self, settings: TrackerSettings, fps: float) -> None:
        self.settings = settings
        self.fps = fps
        self.last_time: float | None = None
        self._tracker = self._new()

    def _new(self) -> ByteTrackTracker:
        return ByteTrackTracker(
            lost_track_buffer=max(1, round(self.settings.lost_s * REFERENCE_FPS)),
            frame_rate=self.fps,
            track_activation_threshold=self.settings.activation_confidence,
            minimum_consecutive_frames=self.settings.min_frames,
            high_conf_det_threshold=self.settings.high_confidence,
        )

    def __len__(self) -> int:
        """Tracks held now: lost ones are pruned after `lost_s`, so memory follows what is in view."""
        return len(self._tracker.tracks)

    def reset(self) -> None:
        """Forget every track: after a change of frame size, boxes are no longer comparable."""
        self._tracker = self._new()
        self.last_time = None

    def update(self, detections: sv.Detections, at: float) -> sv.Detections:
        """Track one frame captured at `at` (seconds); -1 marks a detection with no track yet."""
        if self.last_time is not None and at <= self.last_time:
            raise ValueError(f"capture time {at} is not after the last tracked frame {self.last_time}")
        self.last_time = at
        tracked = self._tracker.update(detections, timestamp=at)
        if tracked.tracker_id is None:
            tracked.tracker_id = np.full(len(tracked), -1, dtype=int)
        return tracked
