"""The detector contract: every model backend is a callable from a BGR image to `sv.Detections`.

`supervision.Detections` is the one detection type of the project (parallel numpy arrays: `xyxy`
in pixels of the image given, `confidence`, `class_id` as taxonomy class index, optional
`tracker_id`, and `data`). It flows unchanged from the backends to every rule, tracker and drawing.
Torch objects never leave a backend.
"""

from __future__ import annotations

from typing import Protocol, cast, runtime_checkable

import numpy as np
import supervision as sv

KEEP_CONFIDENCE = 0.25  # the lowest score a backend keeps unless told otherwise


def subset(detections: sv.Detections, keep: np.ndarray) -> sv.Detections:
    """`detections[keep]` typed as Detections (supervision's __getitem__ is typed as a union)."""
    return cast(sv.Detections, detections[keep])


@runtime_checkable
class Detector(Protocol):
    """A loaded model. `names[class_id]` is the taxonomy class name."""

    names: list[str]
    version: str  # "<model name>@<first 12 hex of the weights' sha256>": stored on every finding
    input_size: int  # the square side the model was trained at

    def __call__(self, image: np.ndarray) -> sv.Detections:
        """Detect on one BGR uint8 image (H, W, 3); boxes in that image's pixel coordinates."""
        ...
