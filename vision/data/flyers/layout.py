"""The printed flyer, flat and clean: paper and ink, and the text laid out by style (sticker, card,
sheet, strip, painted)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from vision.data.flyers.fonts import fit_font
from vision.data.flyers.text import FlyerText

RGB = tuple[int, int, int]


Row = tuple[str, float, RGB, bool]  # text, share of the height, colour, bold


PAPERS: tuple[tuple[RGB, float], ...] = (
    ((246, 245, 238), 0.55),
    ((252, 232, 96), 0.1),
    ((250, 196, 206), 0.08),
    ((186, 216, 245), 0.07),
    ((196, 236, 192), 0.06),
    ((214, 34, 38), 0.08),
    ((240, 130, 40), 0.03),
    ((30, 80, 170), 0.03),
)


INKS: tuple[RGB, ...] = ((205, 20, 24), (22, 22, 22), (24, 52, 168), (12, 110, 50))


@dataclass(frozen=True)
class Style:
    name: str
    aspect: tuple[float, float]  # width / height
    height_m: tuple[float, float]  # printed height in metres
    weight: float  # how often it appears


STYLES = (
    Style("sticker", (2.5, 5.0), (0.03, 0.08), 0.28),
    Style("card", (1.5, 1.9), (0.05, 0.09), 0.14),
    Style("sheet", (0.68, 0.75), (0.18, 0.42), 0.36),
    Style("strip", (0.18, 0.33), (0.15, 0.40), 0.12),
    Style("painted", (2.5, 6.0), (0.06, 0.25), 0.10),
)


def weighted_pick(rng: np.random.Generator, weights: Sequence[float]) -> int:
    p = np.asarray(weights, dtype=float)
    return int(rng.choice(len(p), p=p / p.sum()))


def _paper_and_ink(rng: np.random.Generator) -> tuple[RGB, RGB]:
    paper = PAPERS[weighted_pick(rng, [w for _, w in PAPERS])][0]
    if sum(paper) < 450:  # dark paper (red, blue, orange) carries white or yellow print
        return paper, ((255, 255, 255), (255, 236, 60))[int(rng.integers(2))]
    return paper, INKS[int(rng.choice(len(INKS), p=[0.5, 0.3, 0.15, 0.05]))]


def _draw_centered(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    text: str,
    font_path: str,
    fill: RGB,
    bold: bool = False,
) -> None:
    x1, y1, x2, y2 = box
    font = fit_font(font_path, text, x2 - x1, y2 - y1)
    stroke = max(1, font.size // 18) if bold else 0
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
    x = x1 + (x2 - x1 - (right - left)) / 2 - left
    y = y1 + (y2 - y1 - (bottom - top)) / 2 - top
    draw.text((x, y), text, font=font, fill=fill, stroke_width=stroke, stroke_fill=fill)


def _rows(
    draw: ImageDraw.ImageDraw,
    rows: list[Row],
    width: int,
    height: int,
    margin: float,
    font_path: str,
) -> None:
    """Lay text rows (text, relative height, colour, bold) top to bottom, centred."""
    total = sum(r[1] for r in rows)
    usable = height * (1 - 2 * margin)
    y = height * margin
    for text, share, colour, bold in rows:
        row_h = usable * share / total
        _draw_centered(
            draw,
            (width * margin, y + row_h * 0.1, width * (1 - margin), y + row_h * 0.9),
            text,
            font_path,
            colour,
            bold,
        )
        y += row_h


def render_layout(
    text: FlyerText, style: Style, aspect: float, rng: np.random.Generator, fonts: Sequence[str]
) -> np.ndarray:
    """The printed flyer, flat and clean: RGBA float32 in 0..1 (alpha 0 off the paper)."""
    font = fonts[int(rng.integers(len(fonts)))]
    paper, ink = _paper_and_ink(rng)
    accent = INKS[0] if ink != INKS[0] and sum(paper) > 450 else ink
    if style.name in ("sticker", "painted"):
        height = 80
    elif style.name == "strip":
        height = 360
    else:
        height = 220 if style.name == "card" else 420
    width = max(16, round(height * aspect))
    canvas = Image.new("RGBA", (width, height), (*paper, 0 if style.name == "painted" else 255))
    draw = ImageDraw.Draw(canvas)
    rows: list[Row]
    if style.name == "painted":
        colour = INKS[int(rng.choice(3, p=[0.45, 0.4, 0.15]))]
        words = [text.title.replace(" ", "")[:4], text.number]
        rows = (
            [(" ".join(words), 1.0, colour, True)]
            if aspect > 4
            else [(w, s, colour, True) for w, s in zip(words, (1.0, 0.8), strict=True)]
        )
        _rows(draw, rows, width, height, 0.06, font)
    elif style.name == "sticker":
        title = text.title.replace(" ", "")
        rows = (
            [(f"{title} {text.number}", 1.0, ink, True)]
            if aspect > 3.6
            else [(title, 1.0, accent, True), (text.number, 0.9, ink, True)]
        )
        _rows(draw, rows, width, height, 0.08, font)
    elif style.name == "strip":
        chars = list(text.title.replace(" ", "")) + list(text.phones[0].replace("-", ""))
        step = height * 0.92 / len(chars)
        for i, char in enumerate(chars):
            colour = accent if i < len(text.title.replace(" ", "")) else ink
            y = height * 0.04 + i * step
            _draw_centered(draw, (width * 0.1, y, width * 0.9, y + step * 0.95), char, font, colour, True)
    else:
        header = rng.random() < 0.35
        rows = [] if header else [(text.title, 2.2, accent, True)]
        lines = text.lines[: 1 if style.name == "card" else 3]
        rows += [(line, 1.0, ink, False) for line in lines]
        # the number is what the ad is for: the biggest line after the title, often on its own
        if text.prefix and rng.random() < 0.5:
            rows += [(text.prefix, 0.8, ink, False), (text.number, 2.0, accent, True)]
        else:
            rows += [(text.contact, 1.8, accent, True)]
        top = 0
        if header:
            top = int(height * 0.24)
            draw.rectangle((0, 0, width, top), fill=accent)
            band = (255, 255, 255) if sum(accent) < 500 else (20, 20, 20)
            _draw_centered(
                draw, (width * 0.06, top * 0.12, width * 0.94, top * 0.88), text.title, font, band, True
            )
        sub = Image.new("RGBA", (width, height - top), (0, 0, 0, 0))
        _rows(ImageDraw.Draw(sub), rows, width, height - top, 0.06, font)
        canvas.alpha_composite(sub, (0, top))
        if rng.random() < 0.3:
            inset = int(width * 0.03)
            draw.rectangle(
                (inset, inset, width - inset, height - inset), outline=accent, width=max(2, width // 100)
            )
    flyer = np.asarray(canvas, dtype=np.float32) / 255.0
    return np.ascontiguousarray(flyer)
