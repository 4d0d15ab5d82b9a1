"""Pasting planned flyers into the photo with the scene's light, blur and noise, and labelling each
with the pixels it really changed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from vision.data.flyers.look import Look, look_of, pad_of
from vision.data.flyers.placement import Pasted, Planner, quad_bounds
from vision.data.flyers.scene import Scene

ALPHA_FLOOR = 2.0 / 255.0  # alpha below this is cut, so no pixel outside a flyer's label changes


def paste(canvas: np.ndarray, pasted: Pasted, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Warp one flyer onto `canvas` (float32 BGR, changed in place); return its full-size alpha.

    The flyer takes the scene's white and black points, colour cast and large-scale shading
    (shadows run across it), the background's blur and noise. Alpha under ALPHA_FLOOR is cut, so
    only pixels with alpha > 0 change.
    """
    pad = pad_of(look)
    bounds = quad_bounds(pasted.quad, pad, canvas.shape[:2])
    assert bounds is not None, "the planner only keeps flyers inside the frame"
    x1, y1, x2, y2 = bounds
    flyer = pasted.flyer
    target_h = float(np.linalg.norm(pasted.quad[3] - pasted.quad[0]))
    if flyer.shape[0] > 2 * target_h:  # area-average down first: text stays legible, no aliasing
        scale = 2 * target_h / flyer.shape[0]
        flyer = cv2.resize(
            flyer,
            (max(2, round(flyer.shape[1] * scale)), max(2, round(flyer.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
    height, width = flyer.shape[:2]
    source = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(source, pasted.quad - np.array([x1, y1], np.float32))
    premultiplied = np.dstack([flyer[..., 2::-1] * flyer[..., 3:], flyer[..., 3]])  # RGBA -> BGR*a, a
    warped = cv2.warpPerspective(
        premultiplied,
        matrix,
        (x2 - x1, y2 - y1),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    alpha = warped[..., 3]
    colour = warped[..., :3]
    local = look.grey[max(0, y1 - (y2 - y1)) : y2 + (y2 - y1), max(0, x1 - (x2 - x1)) : x2 + (x2 - x1)]
    white = float(np.clip(0.5 * np.percentile(local, 97) + 0.5 * look.white, 90, 255)) * rng.uniform(
        0.82, 1.0
    )
    black = min(look.black + rng.uniform(5, 25), white * 0.5)
    shading = look.shading[y1:y2, x1:x2]
    shade = np.clip(shading / max(1.0, float(shading.mean())), 0.75, 1.25)[..., None]
    colour = (black * alpha[..., None] + (white - black) * colour) * shade * look.gains
    sigma = math.sqrt(max(0.0, look.blur_sigma**2 - 0.5**2)) * rng.uniform(0.8, 1.2)
    if sigma > 0.2:
        colour = cv2.GaussianBlur(colour, (0, 0), sigma)
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    noise = rng.normal(0, max(0.5, look.noise), alpha.shape).astype(np.float32)
    colour = colour + (noise * alpha)[..., None]
    cut = alpha < ALPHA_FLOOR
    alpha[cut] = 0.0
    colour[cut] = 0.0
    region = canvas[y1:y2, x1:x2]
    region[:] = region * (1 - alpha[..., None]) + colour
    full = np.zeros(canvas.shape[:2], np.float32)
    full[y1:y2, x1:x2] = alpha
    return full


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@dataclass
class Example:
    image: np.ndarray  # BGR uint8, before JPEG encoding
    flyers: list[Pasted]  # each with the xyxy of its visible pixels
    jpeg_quality: int


def example_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def render_example(
    scene: Scene,
    rng: np.random.Generator,
    fonts: Sequence[str],
    paste_flyers: bool = True,
    empty_share: float = 0.1,
    upscale: int = 1,
) -> Example:
    """Plan flyers on a scene and paste them; paste_flyers=False draws the same plan but pastes nothing.

    `upscale` > 1 pastes the same plan on the scene enlarged that many times, as a camera with that
    many times the pixels and the same sharpness and noise per pixel would see it: the flyers of a
    640 px set, each at the size a 12 MP patrol photo gives it, for reading them as the scan does.
    """
    look = look_of(scene.image)
    planner = Planner(scene, look, rng, fonts)
    if rng.random() >= empty_share:
        wanted = min(5, 1 + int(rng.poisson(1.2)))
        for _ in range(3 * wanted):  # many sites fail (no room, off the surface): try others
            wanted -= planner.site() > 0
            if wanted == 0:
                break
    quality = int(rng.integers(60, 96))
    background = scene.image
    if upscale > 1:
        background = cv2.resize(background, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        look = replace(look_of(background), blur_sigma=look.blur_sigma, noise=look.noise)
        for pasted in planner.placed:
            pasted.quad = pasted.quad * np.float32(upscale)
    canvas = background.astype(np.float32)
    if not paste_flyers:
        return Example(background.copy(), [], quality)
    alphas = [paste(canvas, p, look, rng) for p in planner.placed]
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    # a faint edge pixel whose colour is close to the wall's rounds back to the wall's value: the
    # label covers the pixels a flyer really changed, not those it only touched
    changed = (image != background).any(axis=2)
    kept = []
    for i, pasted in enumerate(planner.placed):
        visible = alphas[i].copy()
        for later in alphas[i + 1 :]:
            visible *= 1 - later
        bounds = _bounds((visible > 0) & changed)
        if bounds is not None:
            pasted.xyxy = bounds
            kept.append(pasted)
    return Example(image, kept, quality)
