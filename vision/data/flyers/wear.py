"""A clean flyer worn as on a street: ragged edges, rounded sticker corners, wrinkles, folds, fading,
dirt and tears; painted ads sprayed."""

from __future__ import annotations

import cv2
import numpy as np

from vision.data.flyers.layout import Style


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise in -1..1: wrinkles, shading, dirt."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    field = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(field / 2.0, -1.0, 1.0)


def _jagged_line(
    rng: np.random.Generator, start: np.ndarray, end: np.ndarray, roughness: float
) -> np.ndarray:
    """A torn edge: a straight cut with random-walk wiggle across it."""
    steps = max(4, int(np.linalg.norm(end - start) / 4))
    t = np.linspace(0.0, 1.0, steps)[:, None]
    direction = (end - start) / max(1e-6, float(np.linalg.norm(end - start)))
    normal = np.array([-direction[1], direction[0]])
    wiggle = np.cumsum(rng.normal(0, roughness, steps))
    wiggle -= np.linspace(wiggle[0], wiggle[-1], steps)  # the tear meets both edges where it started
    return start + t * (end - start) + wiggle[:, None] * normal


def tear(alpha: np.ndarray, rng: np.random.Generator, keep: float) -> np.ndarray:
    """Cut a piece off along a jagged line from one edge to another; about `keep` of it stays."""
    height, width = alpha.shape
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=float)
    side = int(rng.integers(4))
    if rng.random() < 0.5:  # a corner torn off
        a = corners[side] + (corners[(side + 1) % 4] - corners[side]) * rng.uniform(0.2, 0.7)
        b = corners[side] + (corners[(side + 3) % 4] - corners[side]) * rng.uniform(0.2, 0.7)
        cut = _jagged_line(rng, a, b, 1.2)
        removed = np.vstack([cut, corners[side][None]])
    else:  # a band torn off one side
        depth = 1.0 - keep
        a = corners[side] + (corners[(side + 3) % 4] - corners[side]) * depth * rng.uniform(0.6, 1.4)
        b = corners[(side + 1) % 4] + (
            corners[(side + 2) % 4] - corners[(side + 1) % 4]
        ) * depth * rng.uniform(0.6, 1.4)
        cut = _jagged_line(rng, a, b, 1.5)
        removed = np.vstack([cut, corners[(side + 1) % 4][None], corners[side][None]])
    mask = np.ones_like(alpha)
    cv2.fillPoly(mask, [np.round(removed).astype(np.int32)], 0.0)
    return alpha * mask


def age(flyer: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Wear a clean flyer: ragged edges, rounded sticker corners, wrinkles, folds, fading, dirt, tears."""
    out = flyer.copy()
    height, width = out.shape[:2]
    rgb, alpha = out[..., :3], out[..., 3]
    if style.name == "painted":
        spray = np.clip(0.75 + 0.35 * rng.standard_normal(alpha.shape).astype(np.float32), 0, 1)
        halo = cv2.GaussianBlur(alpha, (0, 0), max(1.0, height / 40))
        out[..., 3] = np.clip(np.maximum(alpha * spray, 0.25 * halo) * rng.uniform(0.6, 0.95), 0, 1)
        return out
    if style.name == "sticker" and rng.random() < 0.4:
        radius = int(min(height, width) * 0.18)
        rounded = np.zeros((height, width), np.uint8)
        cv2.rectangle(rounded, (radius, 0), (width - radius, height), 1, -1)
        cv2.rectangle(rounded, (0, radius), (width, height - radius), 1, -1)
        for cx, cy in (
            (radius, radius),
            (width - radius, radius),
            (radius, height - radius),
            (width - radius, height - radius),
        ):
            cv2.circle(rounded, (cx, cy), radius, 1, -1)
        alpha *= rounded
    else:  # paper edges are never ruler-straight
        edge = np.ones((height, width), np.float32)
        rough = max(1, int(min(height, width) * 0.01))
        for side in range(4):
            depth = np.clip(rng.normal(0, rough, max(height, width)), 0, 3 * rough).astype(int)
            for i, d in enumerate(depth[: width if side < 2 else height]):
                if side == 0:
                    edge[:d, i] = 0
                elif side == 1:
                    edge[height - d :, i] = 0
                elif side == 2:
                    edge[i, :d] = 0
                else:
                    edge[i, width - d :] = 0
        alpha *= edge
    shade = 1.0 + rng.uniform(0.02, 0.12) * _smooth_field(rng, (height, width), int(rng.integers(3, 9)))
    if rng.random() < 0.2:  # a fold: one half a little darker
        fold = np.ones((height, width), np.float32)
        if rng.random() < 0.5:
            fold[: int(height * rng.uniform(0.3, 0.7))] *= rng.uniform(0.85, 0.95)
        else:
            fold[:, : int(width * rng.uniform(0.3, 0.7))] *= rng.uniform(0.85, 0.95)
        shade *= fold
    rgb *= shade[..., None]
    if rng.random() < 0.35:  # sun-faded: washed out towards yellowed grey paper
        fade = rng.uniform(0.15, 0.6)
        rgb[:] = rgb * (1 - fade) + fade * np.array([0.92, 0.9, 0.8], np.float32)
    if rng.random() < 0.2:  # dirt and rain streaks
        dirt = np.clip(_smooth_field(rng, (height, width), int(rng.integers(4, 12))), 0, 1)
        rgb *= (1 - rng.uniform(0.2, 0.5) * dirt)[..., None]
    if rng.random() < 0.25:
        alpha[:] = tear(alpha, rng, keep=rng.uniform(0.4, 0.8))
    out[..., :3] = np.clip(rgb, 0, 1)
    return out
