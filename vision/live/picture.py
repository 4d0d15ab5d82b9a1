"""Is there a street in this frame at all? The one test every camera rule asks first.

A camera that lost its signal still sends frames: all black, an even grey or blue "no signal"
screen with a line of text on it, a covered lens, a lens washed out by rain or fog, a picture
blurred past recognition. The detector finds nothing in them, and the rules would read nothing as
the place cleared: a parked car's case proposed resolved with a black after-photo, an occupancy
background learned from a blank screen. Such a frame is `blank` (the levels of nearly all the
picture lie within `min_contrast` of full scale: a line of text is under the 5 % the range leaves
out) or `blurred` (its fine detail is under `min_detail` of that range); the rules neither judge
nor learn it (vision/live/rules.py). A night street passes: its lamps and lit windows spread the
levels, and what detail there is is measured against its own range.

A live sensor never gives the same pixels twice (its noise): the very same picture for `frozen_s`
of capture time is a stuck encoder or a cached snapshot, a street no longer shown (`frozen`; the
rule engine keeps the fingerprints, `picture_fingerprint`).

Measured on the frame scaled to WIDTH pixels: a few milliseconds for a 1080p frame.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import cv2
import numpy as np

from vision.live.cameras import PictureSettings
from vision.live.occupancy import shrink, working_size

WIDTH = 160  # pixels: enough for the levels and the detail of a street, cheap for any frame
DETAIL_SIGMA = 1.5  # at WIDTH: the detail is what a blur this wide takes away
PERCENTILES = (5.0, 95.0)  # a line of "no signal" text covers about 2 % of the screen

Fault = Literal["blank", "blurred", "frozen"]


def picture_fingerprint(image: np.ndarray) -> str:
    """The pixels of every 8th row and column, hashed (0.3 ms for 1080p)."""
    return hashlib.blake2b(np.ascontiguousarray(image[::8, ::8]).tobytes(), digest_size=8).hexdigest()


def picture_fault(image: np.ndarray, settings: PictureSettings) -> Fault | None:
    """Why the BGR `image` shows nothing to judge (blank or blurred), or None when it shows a picture."""
    height, width = image.shape[:2]
    small = shrink(image, working_size((width, height), min(WIDTH, width)))
    levels = small.reshape(-1, 3).astype(np.float32)
    low, high = np.percentile(levels, PERCENTILES, axis=0)
    spread = float((high - low).max()) / 255.0
    if spread < settings.min_contrast:
        return "blank"
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    detail = float(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), DETAIL_SIGMA)).mean()) / 255.0
    return "blurred" if detail < settings.min_detail * spread else None
