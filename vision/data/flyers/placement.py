"""Where flyers go on a scene: sites (a pole, a door, a window, a patch of wall) and poses along the
surface's lines, off labelled objects and mostly visible."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.core.boxes import box_mask
from vision.data.flyers.layout import STYLES, Style, render_layout, weighted_pick
from vision.data.flyers.look import Look, pad_of
from vision.data.flyers.scene import DEFAULT_SCENE_HEIGHT_M, Scene, flyer_rows
from vision.data.flyers.text import FlyerText, flyer_text
from vision.data.flyers.wear import age
from vision.detect.surfaces import (
    ground_mask,
    line_segments,
    local_directions,
    near_segments,
    surface_mask,
)

MIN_FLYER_PX = 6  # smaller flyers are not pasted: nobody, human or model, can see them


@dataclass
class Pasted:
    """One flyer in one picture: what it says, its style and where it went."""

    style: str
    text: FlyerText
    quad: np.ndarray  # (4, 2) image corners tl, tr, br, bl
    flyer: np.ndarray = field(repr=False)  # aged RGBA float32 design
    xyxy: tuple[int, int, int, int] = (0, 0, 0, 0)  # visible pixels' bounds, filled by compositing


def flyer_quad(
    center: np.ndarray,
    height: float,
    aspect: float,
    up_deg: float,
    across_deg: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Corners of a flyer lying on the surface: edges along the surface's lines, stuck on a little crooked."""
    crooked = float(np.clip(rng.normal(0, 4), -12, 12))
    up = math.radians(up_deg + crooked)
    across = math.radians(across_deg + crooked)
    v = np.array([math.cos(up), math.sin(up)])
    u = np.array([math.cos(across), math.sin(across)])
    if v[1] < 0:
        v = -v
    if u[0] < 0:
        u = -u
    width = height * aspect
    near = rng.uniform(0.9, 1.1)  # one side a little nearer the camera
    half_left, half_right = height / 2, height * near / 2
    return np.array(
        [
            center - u * width / 2 - v * half_left,
            center + u * width / 2 - v * half_right,
            center + u * width / 2 + v * half_right,
            center - u * width / 2 + v * half_left,
        ],
        dtype=np.float32,
    )


def quad_bounds(quad: np.ndarray, pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    x1, y1 = np.floor(quad.min(axis=0)).astype(int) - pad
    x2, y2 = np.ceil(quad.max(axis=0)).astype(int) + pad + 1
    if x1 < 0 or y1 < 0 or x2 > shape[1] or y2 > shape[0]:
        return None
    return int(x1), int(y1), int(x2), int(y2)


def _count(integral: np.ndarray, bounds: tuple[int, int, int, int]) -> int:
    x1, y1, x2, y2 = bounds
    return int(integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1])


@dataclass
class Planner:
    """Chooses sites and flyer poses on one scene, keeping flyers off objects and mostly visible."""

    scene: Scene
    look: Look
    rng: np.random.Generator
    fonts: Sequence[str]
    placed: list[Pasted] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        shape = self.scene.image.shape[:2]
        ppm = self.scene.pixels_per_metre
        self.ppm = ppm if ppm else shape[0] / DEFAULT_SCENE_HEIGHT_M
        surface = surface_mask(self.scene.image)
        if not self.scene.wall_foot:  # objects in front of a wall say little about where the road ends
            surface &= ~ground_mask(self.scene.image, self.scene.standing)
        top, bottom = flyer_rows(shape[0], self.scene.ground_y, self.ppm)
        surface[:top] = False
        surface[bottom:] = False
        self.off_surface = cv2.integral((~surface).astype(np.uint8))
        self.on_object = cv2.integral(box_mask(shape, self.scene.protected, margin=1).astype(np.uint8))
        self.lines = line_segments(self.scene.image)
        self.allowed_points = np.argwhere(
            surface & ~box_mask(shape, self.scene.protected, margin=2)
        )  # (row, col)
        self.poles = self._poles(surface)

    def _poles(self, surface: np.ndarray) -> np.ndarray:
        """Long vertical segments (poles, pipes, door frames, wall corners) lying on usable surface.

        The straight edge of a rotated export's black fill or a lane line on the road is long and
        vertical too; sampling the segment against the eroded surface mask drops those.
        """
        inner = cv2.erode(surface.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        segments = self.lines.vertical
        long = (
            np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
            > 0.2 * surface.shape[0]
        )
        keep = []
        for x1, y1, x2, y2 in segments[long]:
            t = np.linspace(0, 1, 12)
            cols = np.clip(np.round(x1 + t * (x2 - x1)).astype(int), 0, surface.shape[1] - 1)
            rows = np.clip(np.round(y1 + t * (y2 - y1)).astype(int), 0, surface.shape[0] - 1)
            if inner[rows, cols].mean() >= 0.8:
                keep.append((x1, y1, x2, y2))
        return np.array(keep, np.float32).reshape(-1, 4)

    def fits(self, quad: np.ndarray) -> bool:
        bounds = quad_bounds(quad, pad_of(self.look), self.scene.image.shape[:2])
        if bounds is None or _count(self.on_object, bounds) > 0:
            return False
        area = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1])
        if _count(self.off_surface, bounds) > 0.05 * area:
            return False
        mask = np.zeros(self.scene.image.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 1)
        new = mask.astype(bool)
        # overlapping is fine (several flyers on one pole), hiding most of an earlier one is not
        return all((m & ~new).sum() >= 0.5 * m.sum() for m in self._visible_now())

    def _visible_now(self) -> list[np.ndarray]:
        visible = []
        for i, mask in enumerate(self.masks):
            later = np.zeros_like(mask)
            for other in self.masks[i + 1 :]:
                later |= other
            visible.append(mask & ~later)
        return visible

    def add(
        self, style: Style, center: np.ndarray, up_deg: float | None = None, structure: bool = False
    ) -> Pasted | None:
        """Try to stick one flyer of `style` near `center`; None when no pose fits.

        With `structure`, a near-vertical edge (a wall corner, pipe, frame) must be near: open
        ground and grass have none, walls almost always do.
        """
        rng = self.rng
        aspect = float(rng.uniform(*style.aspect))
        height = float(rng.uniform(*style.height_m)) * self.ppm * float(rng.uniform(0.7, 1.4))
        height = min(height, 0.6 * min(self.scene.image.shape[:2]) / max(1.0, aspect))
        if height * min(1.0, aspect) < MIN_FLYER_PX:
            return None
        text = flyer_text(rng)
        flyer = age(render_layout(text, style, aspect, rng, self.fonts), style, rng)
        for attempt in range(6):
            point = center + (rng.normal(0, 0.3 * height, 2) if attempt else 0.0)
            radius = 3 * height + 20
            where = (float(point[0]), float(point[1]))
            if structure and not len(near_segments(self.lines.vertical, where, radius)):
                continue
            up, across = local_directions(self.lines, where, radius=radius)
            quad = flyer_quad(point, height, aspect, up if up_deg is None else up_deg, across, rng)
            if self.fits(quad):
                mask = np.zeros(self.scene.image.shape[:2], np.uint8)
                cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 1)
                self.masks.append(mask.astype(bool))
                pasted = Pasted(style.name, text, quad, flyer)
                self.placed.append(pasted)
                return pasted
        return None

    def random_style(self, names: Sequence[str] | None = None) -> Style:
        styles = [s for s in STYLES if names is None or s.name in names]
        return styles[weighted_pick(self.rng, [s.weight for s in styles])]

    def site(self) -> int:
        """Stick flyers at one place: a column on a pole or pipe, a door, a window or a patch of wall.

        Returns how many stuck.
        """
        rng = self.rng
        panels = {"door": self.scene.doors, "window": self.scene.windows}
        kinds = (
            ["wall"]
            + (["pole"] if len(self.poles) else [])
            + [k for k, boxes in panels.items() if len(boxes)]
        )
        weights = {"wall": 0.4, "pole": 0.25, "door": 0.2, "window": 0.15}
        kind = kinds[weighted_pick(rng, [weights[k] for k in kinds])]
        count = min(5, int(rng.geometric(0.5)))
        before = len(self.placed)
        if kind == "pole":
            x1, y1, x2, y2 = self.poles[int(rng.integers(len(self.poles)))]
            if y2 < y1:
                x1, y1, x2, y2 = x2, y2, x1, y1
            down = np.array([x2 - x1, y2 - y1]) / max(1e-6, math.hypot(x2 - x1, y2 - y1))
            up_deg = math.degrees(math.atan2(down[1], down[0]))
            point = np.array([x1, y1]) + rng.uniform(0.2, 0.8) * np.array([x2 - x1, y2 - y1])
            for _ in range(count):  # a column down the pole, with small gaps and overlaps
                pasted = self.add(self.random_style(("sticker", "strip", "sheet")), point, up_deg=up_deg)
                if pasted is not None:
                    span = float(np.linalg.norm(pasted.quad[3] - pasted.quad[0]))
                    point = pasted.quad.mean(axis=0) + down * span * rng.uniform(0.7, 1.3)
            return len(self.placed) - before
        if kind in panels:
            x1, y1, x2, y2 = panels[kind][int(rng.integers(len(panels[kind])))]
            point = np.array(
                [x1 + rng.uniform(0.2, 0.8) * (x2 - x1), y1 + rng.uniform(0.3, 0.75) * (y2 - y1)]
            )
        else:
            if not len(self.allowed_points):
                return 0
            row, col = self.allowed_points[int(rng.integers(len(self.allowed_points)))]
            point = np.array([float(col), float(row)])
        for _ in range(count):
            pasted = self.add(self.random_style(), point, structure=kind == "wall")
            if pasted is not None:  # the next one of a cluster goes beside or over this one
                size = float(np.linalg.norm(pasted.quad[2] - pasted.quad[0]))
                point = pasted.quad.mean(axis=0) + rng.normal(0, 0.6 * size, 2)
        return len(self.placed) - before
