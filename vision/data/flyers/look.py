"""How the camera saw a background (white and black points, colour cast, blur, noise, shading):
what a pasted flyer must share with it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from vision.detect.surfaces import edge_sharpness, noise_sigma


@cache
def _blur_table() -> tuple[np.ndarray, np.ndarray]:
    """Edge sharpness of a drawn pattern blurred by known sigmas: background sharpness -> sigma."""
    pattern = np.full((160, 160), 220, np.uint8)
    for i in range(8):
        cv2.rectangle(pattern, (10 + 18 * i, 10 + 9 * i), (20 + 18 * i, 150 - 9 * i), 30 + 20 * i, -1)
    sigmas = np.array([0.0, 0.5, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0])
    sharpness = np.array(
        [edge_sharpness(cv2.GaussianBlur(pattern, (0, 0), s) if s else pattern) for s in sigmas]
    )
    return sharpness[::-1], sigmas[::-1]  # increasing sharpness for np.interp


@dataclass(frozen=True)
class Look:
    """How the camera saw this background: what a pasted flyer must share with it."""

    black: float  # grey level of the darkest ink under this light
    white: float  # grey level of white paper here (scene-wide)
    gains: np.ndarray  # per-channel colour cast (BGR), grey-world
    blur_sigma: float  # Gaussian blur that gives a flyer the background's edge sharpness
    noise: float  # grey-level noise sigma
    shading: np.ndarray  # large-scale brightness, float32 H x W, for shadows across a flyer
    grey: np.ndarray  # uint8 H x W


def look_of(image: np.ndarray) -> Look:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    low, high = np.percentile(grey, [2, 97])
    means = image.reshape(-1, 3).mean(axis=0)
    gains = np.clip(means / max(1.0, float(means.mean())), 0.85, 1.15)
    sharp, sigmas = _blur_table()
    sigma = float(np.interp(edge_sharpness(grey), sharp, sigmas))
    shading = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), max(2.0, image.shape[0] / 60))
    return Look(float(low), float(high), gains, sigma, noise_sigma(grey), shading, grey)


def pad_of(look: Look) -> int:
    """Pixels around a flyer's corners that its blur (three sigmas) can still reach."""
    return math.ceil(3 * look.blur_sigma) + 2
