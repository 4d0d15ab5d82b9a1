"""Synthetic posted flyers (非法小广告) on real street photos, for training the `flyer` class.

No labelled photos of posted flyers exist here, so flyers are rendered (Chinese text in a real
CJK font, typical content and mobile numbers, paper, stickers, painted ads), degraded (torn,
faded, wrinkled) and pasted onto real backgrounds where flyers really are: walls, poles and
drainpipes, doors (see vision/detect/surfaces.py for the rules), never on a labelled object. Size comes
from the scene's scale (a door is about 2.1 m tall), so a flyer is a few pixels on a whole facade
and a large sheet in a close-up. Lighting, blur and noise are matched to the background.

Every image is a pure function of (background, its labels, seed, index), so a set is reproducible
byte for byte. `synthesize()` writes an ultralytics dataset; `cli()` is `streetorder data
synth-flyers`.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from vision.core.taxonomy import Taxonomy, load_taxonomy, normalise_name
from vision.data.datamix import image_files, label_path, read_data_yaml
from vision.detect.surfaces import (
    BOTTOM_BAND,
    TOP_BAND,
    box_mask,
    edge_sharpness,
    ground_mask,
    line_segments,
    local_directions,
    near_segments,
    noise_sigma,
    surface_mask,
)

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
FONT_SETUP = "apt-get install -y fonts-wqy-microhei fonts-wqy-zenhei fonts-arphic-ukai"
FLYER_CLASS = "flyer"
# Labelled classes that are surfaces flyers are stuck on, not objects a flyer may hide.
SURFACE_CLASSES = frozenset({"door", "window"})
# Typical heights in metres of labelled things, to read a scene's pixels per metre.
KNOWN_HEIGHTS_M = {"door": 2.1, "window": 1.6, "garbage_bin": 1.0, "overflow": 1.0, "car": 1.5}
DEFAULT_SCENE_HEIGHT_M = 4.5  # what a photo without known objects is taken to span vertically
# Labelled things that stand on the ground: their lowest bottom edge is taken as the wall's foot.
STANDING_CLASSES = frozenset(
    {"door", "garbage_bin", "overflow", "garbage", "car", "bus", "truck", "motorcycle", "bike"}
)
FLYER_HEIGHTS_M = (0.1, 3.0)  # flyers are stuck between just above the ground and an outstretched arm
MIN_FLYER_PX = 6  # smaller flyers are not pasted: nobody, human or model, can see them
ALPHA_FLOOR = 2.0 / 255.0  # alpha below this is cut, so no pixel outside a flyer's label changes


class FontError(RuntimeError):
    """No font that can render Chinese text is installed."""


def _covers_chinese(path: str) -> bool:
    """Whether the font draws 开 and 锁 as two different glyphs, not twice the missing-glyph box."""
    try:
        font = ImageFont.truetype(path, 24)
    except OSError:
        return False
    first, second = (bytes(font.getmask(char)) for char in "开锁")
    return bool(first.strip(b"\x00")) and first != second


def find_cjk_fonts(candidates: Sequence[str] = FONT_CANDIDATES, fontconfig: bool = True) -> tuple[str, ...]:
    """Installed CJK font files (known paths, then `fc-list :lang=zh`), sorted; fails clearly."""
    found = {p for p in candidates if Path(p).is_file()}
    if fontconfig and shutil.which("fc-list"):
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, check=False)
        found |= {line.split(":")[0].strip() for line in listed.stdout.splitlines() if line.strip()}
    fonts = tuple(sorted(p for p in found if _covers_chinese(p)))
    if not fonts:
        raise FontError(
            "no font that renders Chinese is installed (looked at "
            f"{', '.join(candidates)} and `fc-list :lang=zh`); install one with: {FONT_SETUP}"
        )
    return fonts


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def fit_font(path: str, text: str, width: float, height: float) -> ImageFont.FreeTypeFont:
    """The largest font size whose rendering of `text` fits width x height (text size is linear)."""
    size = max(6, int(height))
    left, top, right, bottom = _font(path, size).getbbox(text)
    scale = min(width / max(1, right - left), height / max(1, bottom - top), 1.0)
    return _font(path, max(6, int(size * scale)))


# ---------------------------------------------------------------- content


SERVICES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "开锁": (
        ("专业开锁", "开锁换锁", "开锁 修锁", "开锁公司"),
        ("换锁芯 开汽车锁", "开保险柜 防盗门", "公安备案 快速上门", "24小时服务"),
    ),
    "办证": (("办证", "办证刻章", "办 证"), ("各类证件 毕业证", "驾驶证 身份证", "刻章 发票", "保密 快速")),
    "疏通": (
        ("疏通下水道", "管道疏通", "通下水道"),
        ("马桶 地漏 厨房", "化粪池清理 抽粪", "高压清洗管道", "不通不收费"),
    ),
    "搬家": (
        ("搬家", "搬家拉货", "蚂蚁搬家"),
        ("长短途运输 居民搬家", "公司搬迁 钢琴搬运", "空调移机", "价格合理"),
    ),
    "贷款": (
        ("贷款", "无抵押贷款", "信用贷款"),
        ("当天放款 手续简单", "急用钱 快速到账", "车贷 房贷", "额度高 利息低"),
    ),
    "招聘": (
        ("招聘", "高薪诚聘", "急招"),
        ("服务员 厨师 保安", "月薪6000-12000", "包吃包住", "男女不限 18-45岁"),
    ),
    "回收": (("高价回收", "回收旧家电"), ("空调 电脑 冰箱", "废品 旧手机", "上门回收")),
    "维修": (("家电维修", "专业维修"), ("热水器 洗衣机 空调", "燃气灶 油烟机", "上门服务")),
    "出租": (("房屋出租", "旺铺转让", "单间出租"), ("拎包入住 家电齐全", "面议", "押一付一")),
    "装修": (("防水补漏", "刷墙 装修", "打孔"), ("水电改造 瓷砖", "外墙 屋顶", "免费上门勘察")),
}
TAGLINES = ("24小时服务", "随叫随到", "诚信经营", "价格合理", "微信同号", "全市上门", "质量保证")
CONTACT_PREFIXES = ("电话:", "联系电话:", "热线:", "手机:", "Tel:", "", "", "")
LANDLINE_AREAS = (
    "010",
    "020",
    "021",
    "022",
    "023",
    "024",
    "025",
    "027",
    "028",
    "029",
    "0371",
    "0311",
    "0351",
    "0431",
    "0451",
    "0531",
    "0551",
    "0571",
    "0591",
    "0755",
)


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, n))


def mobile_number(rng: np.random.Generator) -> str:
    """A mainland mobile number: 1, then 3-9, then nine digits."""
    return "1" + str(int(rng.integers(3, 10))) + _digits(rng, 9)


def landline_number(rng: np.random.Generator) -> str:
    """A fixed-line number with its area code, canonical form `0371-12345678`."""
    area = LANDLINE_AREAS[int(rng.integers(len(LANDLINE_AREAS)))]
    return f"{area}-{int(rng.integers(2, 9))}{_digits(rng, 7)}"


def display_phone(number: str, rng: np.random.Generator) -> str:
    """How a number is printed: run together, spaced 3-4-4 or dashed, landlines with brackets."""
    if "-" in number:
        area, local = number.split("-")
        return f"({area}){local}" if rng.random() < 0.3 else number
    return [number, f"{number[:3]} {number[3:7]} {number[7:]}", f"{number[:3]}-{number[3:7]}-{number[7:]}"][
        int(rng.choice(3, p=[0.6, 0.25, 0.15]))
    ]


@dataclass(frozen=True)
class FlyerText:
    title: str
    lines: tuple[str, ...]
    prefix: str  # "电话:", "热线:" ... or ""
    number: str  # the number as printed: 138 1234 5678, (0371)12345678
    phones: tuple[str, ...]  # canonical numbers: 13812345678, 0371-12345678

    @property
    def contact(self) -> str:
        return self.prefix + self.number


def flyer_text(rng: np.random.Generator) -> FlyerText:
    """Typical small-ad content: a service, one to three detail lines and a phone number."""
    titles, details = SERVICES[list(SERVICES)[int(rng.integers(len(SERVICES)))]]
    title = titles[int(rng.integers(len(titles)))]
    count = int(rng.integers(1, min(3, len(details)) + 1))
    lines = tuple(details[i] for i in sorted(rng.choice(len(details), count, replace=False)))
    if rng.random() < 0.4:
        lines += (TAGLINES[int(rng.integers(len(TAGLINES)))],)
    number = landline_number(rng) if rng.random() < 0.12 else mobile_number(rng)
    prefix = CONTACT_PREFIXES[int(rng.integers(len(CONTACT_PREFIXES)))]
    return FlyerText(title, lines, prefix, display_phone(number, rng), (number,))


# ---------------------------------------------------------------- rendering

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


def _pick(rng: np.random.Generator, weights: Sequence[float]) -> int:
    p = np.asarray(weights, dtype=float)
    return int(rng.choice(len(p), p=p / p.sum()))


def _paper_and_ink(rng: np.random.Generator) -> tuple[RGB, RGB]:
    paper = PAPERS[_pick(rng, [w for _, w in PAPERS])][0]
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


# ---------------------------------------------------------------- the scene


@dataclass(frozen=True)
class Scene:
    """A background photo and what its labels say about where flyers may go and how big they are."""

    image: np.ndarray  # BGR uint8
    protected: np.ndarray  # (N, 4) pixel xyxy of labelled objects: never covered
    doors: np.ndarray  # (M, 4) pixel xyxy of doors: preferred surfaces
    windows: np.ndarray  # (K, 4) pixel xyxy of windows: shop windows get ads stuck on the glass
    pixels_per_metre: float | None  # from labelled objects of known size, None if there are none
    ground_y: float | None  # lowest image row of the wall's foot, None if nothing stands on the ground
    wall_foot: bool  # ground_y comes from a door: the rows above it are wall, no road to look for
    standing: np.ndarray  # (K, 4) pixel xyxy of labelled things that stand on the ground


def pixels_per_metre(boxes: np.ndarray, names: Sequence[str], image_height: int) -> float | None:
    """Median scale of the labelled objects of known height that are not cut by the frame."""
    scales = [
        (y2 - y1) / KNOWN_HEIGHTS_M[name]
        for (x1, y1, x2, y2), name in zip(boxes, names, strict=True)
        if name in KNOWN_HEIGHTS_M and y1 > 1 and y2 < image_height - 1
    ]
    return float(np.median(scales)) if scales else None


def scene_from_labels(image: np.ndarray, rows: np.ndarray, names: Sequence[str]) -> Scene:
    """A Scene from YOLO rows (class, cx, cy, w, h normalised) and the dataset's class names.

    `names` are normalised; classes in SURFACE_CLASSES are surfaces, every other labelled box is
    an object no flyer may cover.
    """
    height, width = image.shape[:2]
    rows = np.asarray(rows, dtype=float).reshape(-1, 5)
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    if len(rows) and int(rows[:, 0].max()) >= len(names):
        raise ValueError(f"label class {int(rows[:, 0].max())} is outside the dataset's {len(names)} names")
    row_names = [names[int(c)] for c in rows[:, 0]]
    surface = np.array([n in SURFACE_CLASSES for n in row_names], dtype=bool)
    doors = np.array([n == "door" for n in row_names], dtype=bool)
    standing = np.array([n in STANDING_CLASSES for n in row_names], dtype=bool)
    door_feet = [
        y2 for (_, _, _, y2), n in zip(boxes, row_names, strict=True) if n == "door" and y2 < height - 2
    ]
    # Bins and piles stand in front of the wall, whose foot then appears higher in the image than
    # theirs: without a door, flyers are kept above the middle of the highest standing object.
    middles = [(y1 + y2) / 2 for (_, y1, _, y2), s in zip(boxes, standing, strict=True) if s]
    ground_y = min(door_feet) if door_feet else (min(middles) if middles else None)
    return Scene(
        image=image,
        protected=boxes[~surface] if len(boxes) else np.zeros((0, 4)),
        doors=boxes[doors] if len(boxes) else np.zeros((0, 4)),
        windows=boxes[[n == "window" for n in row_names]] if len(boxes) else np.zeros((0, 4)),
        pixels_per_metre=pixels_per_metre(boxes, row_names, height),
        ground_y=None if ground_y is None else float(ground_y),
        wall_foot=bool(door_feet),
        standing=boxes[standing] if len(boxes) else np.zeros((0, 4)),
    )


def unlabelled_scene(image: np.ndarray) -> Scene:
    """A background without labels: nothing protected, scale and ground guessed."""
    none = np.zeros((0, 4))
    return Scene(image, none, none, none, None, None, False, none)


def flyer_rows(height: int, ground_y: float | None, ppm: float) -> tuple[int, int]:
    """Image rows a flyer may cover: from arm's reach down to just above the ground.

    Without anything standing on the ground, the frame's bottom band (road, pavement) is taken
    as the ground.
    """
    ground = ground_y if ground_y is not None else height * (1 - BOTTOM_BAND)
    top = max(int(height * TOP_BAND), int(ground - FLYER_HEIGHTS_M[1] * ppm))
    bottom = min(int(height * (1 - BOTTOM_BAND)), int(ground - FLYER_HEIGHTS_M[0] * ppm))
    return top, max(top, bottom)


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


# ---------------------------------------------------------------- placement


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


def _pad(look: Look) -> int:
    return math.ceil(3 * look.blur_sigma) + 2


def _quad_bounds(quad: np.ndarray, pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
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
        bounds = _quad_bounds(quad, _pad(self.look), self.scene.image.shape[:2])
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
        return styles[_pick(self.rng, [s.weight for s in styles])]

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
        kind = kinds[_pick(rng, [weights[k] for k in kinds])]
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


# ---------------------------------------------------------------- compositing


def paste(canvas: np.ndarray, pasted: Pasted, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Warp one flyer onto `canvas` (float32 BGR, changed in place); return its full-size alpha.

    The flyer takes the scene's white and black points, colour cast and large-scale shading
    (shadows run across it), the background's blur and noise. Alpha under ALPHA_FLOOR is cut, so
    only pixels with alpha > 0 change.
    """
    pad = _pad(look)
    bounds = _quad_bounds(pasted.quad, pad, canvas.shape[:2])
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
) -> Example:
    """Plan flyers on a scene and paste them; paste_flyers=False draws the same plan but pastes nothing."""
    look = look_of(scene.image)
    planner = Planner(scene, look, rng, fonts)
    if rng.random() >= empty_share:
        wanted = min(5, 1 + int(rng.poisson(1.2)))
        for _ in range(3 * wanted):  # many sites fail (no room, off the surface): try others
            wanted -= planner.site() > 0
            if wanted == 0:
                break
    quality = int(rng.integers(60, 96))
    canvas = scene.image.astype(np.float32)
    if not paste_flyers:
        return Example(scene.image.copy(), [], quality)
    alphas = [paste(canvas, p, look, rng) for p in planner.placed]
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    # a faint edge pixel whose colour is close to the wall's rounds back to the wall's value: the
    # label covers the pixels a flyer really changed, not those it only touched
    changed = (image != scene.image).any(axis=2)
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


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Background:
    image: Path
    names: tuple[str, ...]  # normalised class names of its dataset
    dataset: str  # the data.yaml it belongs to, or "" for an unlabelled folder


def dataset_names(folder: Path) -> tuple[str, tuple[str, ...]]:
    """The data.yaml above a folder of images and its class names (normalised); none if unlabelled."""
    for parent in [folder, *folder.parents][:4]:
        data_yaml = parent / "data.yaml"
        if data_yaml.is_file():
            names = read_data_yaml(data_yaml)["names"]
            values = names.values() if isinstance(names, dict) else names
            return str(data_yaml.resolve()), tuple(normalise_name(str(n)) for n in values)
    return "", ()


def list_backgrounds(folders: Sequence[Path]) -> list[Background]:
    backgrounds = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"--backgrounds: {folder} is not a folder")
        dataset, names = dataset_names(folder)
        files = image_files(folder)
        if not files:
            raise FileNotFoundError(f"--backgrounds: no images in {folder}")
        backgrounds += [Background(f, names, dataset) for f in files]
    return backgrounds


def labelled_classes(backgrounds: Sequence[Background], taxonomy: Taxonomy) -> list[str]:
    """Output classes: the flyer class, then the taxonomy classes EVERY background dataset labels.

    A class only some backgrounds label would be unlabelled on the others, and the per-source
    class mask of a mix (vision/data/datamix.py) covers a whole source: so it is dropped instead.
    """
    common: set[str] | None = None
    for dataset in {b.dataset: b.names for b in backgrounds}.values():
        mapped = {c.name for c in (taxonomy.resolve(n) for n in dataset) if c is not None}
        common = mapped if common is None else common & mapped
    order = [name for name in taxonomy.names if name in (common or set()) and name != FLYER_CLASS]
    return [FLYER_CLASS, *order]


def read_rows(image: Path) -> np.ndarray:
    path = label_path(image)
    if not path.exists():
        return np.zeros((0, 5))
    rows = [
        line.split()[:5] for line in path.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 5
    ]
    return np.array(rows, dtype=float).reshape(-1, 5)


def output_rows(
    background: Background, rows: np.ndarray, classes: Sequence[str], taxonomy: Taxonomy
) -> list[str]:
    """The background's own labels of the output classes, renumbered."""
    lines = []
    for row in rows:
        cls = taxonomy.resolve(background.names[int(row[0])]) if background.names else None
        if cls is not None and cls.name in classes:
            lines.append(f"{classes.index(cls.name)} " + " ".join(f"{v:.6f}" for v in row[1:5]))
    return lines


def yolo_row(class_id: int, xyxy: tuple[int, int, int, int], width: int, height: int) -> str:
    x1, y1, x2, y2 = xyxy
    return (
        f"{class_id} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
        f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
    )


def contact_sheet(
    samples: Sequence[tuple[np.ndarray, list[tuple[int, int, int, int]]]], columns: int = 4, tile: int = 360
) -> np.ndarray:
    """Sample images with their flyer boxes (magenta), then a row of flyer close-ups."""
    tiles: list[np.ndarray] = []
    crops: list[np.ndarray] = []
    for image, boxes in samples:
        for x1, y1, x2, y2 in boxes:
            if y2 - y1 >= 10 and len(crops) < 2 * columns:
                side = max(x2 - x1, y2 - y1)
                cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
                crop = image[max(0, cy - side) : cy + side, max(0, cx - side) : cx + side]
                crops.append(cv2.resize(crop, (tile // 2, tile // 2), interpolation=cv2.INTER_NEAREST))
        scale = tile / max(image.shape[:2])
        small = cv2.resize(
            image,
            (round(image.shape[1] * scale), round(image.shape[0] * scale)),
            interpolation=cv2.INTER_AREA,
        )
        for x1, y1, x2, y2 in boxes:
            cv2.rectangle(
                small,
                (int(x1 * scale) - 1, int(y1 * scale) - 1),
                (int(x2 * scale) + 1, int(y2 * scale) + 1),
                (255, 0, 255),
                1,
            )
        framed = np.full((tile, tile, 3), 40, np.uint8)
        framed[: small.shape[0], : small.shape[1]] = small
        tiles.append(framed)
    while len(tiles) % columns:
        tiles.append(np.full((tile, tile, 3), 40, np.uint8))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    if crops:
        while len(crops) < 2 * columns:
            crops.append(np.full((tile // 2, tile // 2, 3), 40, np.uint8))
        rows.append(np.hstack(crops[: 2 * columns]))
    return np.vstack(rows)


@dataclass(frozen=True)
class Summary:
    out: str
    images: int
    flyers: int
    classes: list[str]
    seconds: float
    images_per_second: float
    flyer_height_px: dict[str, float]  # quantiles p10 / p50 / p90


def synthesize(
    backgrounds: Sequence[Path],
    out: Path,
    count: int,
    seed: int = 0,
    val_share: float = 0.1,
    taxonomy: Taxonomy | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Summary:
    """Write `count` synthetic images with flyers as an ultralytics dataset under `out`.

    A background is used in one split only (its split is drawn once from the seed), so val
    images never share a photo with train images.
    """
    taxonomy = taxonomy or load_taxonomy()
    fonts = find_cjk_fonts()
    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    pool = list_backgrounds(backgrounds)
    if out.exists() and any(out.iterdir()):
        if not (out / "synth.json").exists():  # not ours: nothing in it is deleted
            raise FileExistsError(
                f"{out} is not empty and holds no synthetic flyer set; choose an empty folder"
            )
        if not overwrite:
            raise FileExistsError(
                f"{out} already holds a synthetic flyer set; pass --overwrite to replace it"
            )
    for sub in ("images", "labels"):
        shutil.rmtree(out / sub, ignore_errors=True)
    classes = labelled_classes(pool, taxonomy)
    order_rng = np.random.default_rng(seed)
    order = order_rng.permutation(len(pool))
    in_val = order_rng.random(len(pool)) < val_share
    started = time.perf_counter()
    samples: list[tuple[np.ndarray, list[tuple[int, int, int, int]]]] = []
    heights: list[int] = []
    records = []
    for index in tqdm(range(count), desc="synth-flyers", unit="img", disable=not progress):
        pick = int(order[index % len(pool)])
        background = pool[pick]
        image = cv2.imread(str(background.image), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{background.image}: not a readable image")
        rows = read_rows(background.image)
        scene = (
            scene_from_labels(image, rows, background.names) if background.names else unlabelled_scene(image)
        )
        example = render_example(scene, example_rng(seed, index), fonts)
        split = "val" if in_val[pick] else "train"
        name = f"flyers_{seed}_{index:06d}"
        _, encoded = cv2.imencode(".jpg", example.image, [cv2.IMWRITE_JPEG_QUALITY, example.jpeg_quality])
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        (out / "images" / split / f"{name}.jpg").write_bytes(encoded.tobytes())
        height, width = image.shape[:2]
        lines = output_rows(background, rows, classes, taxonomy)
        lines += [yolo_row(0, p.xyxy, width, height) for p in example.flyers]
        (out / "labels" / split / f"{name}.txt").write_text(
            "".join(f"{line}\n" for line in lines), encoding="utf-8"
        )
        heights += [p.xyxy[3] - p.xyxy[1] for p in example.flyers]
        records.append(
            {
                "image": f"images/{split}/{name}.jpg",
                "background": str(background.image),
                "flyers": [
                    {"xyxy": list(p.xyxy), "style": p.style, "text": asdict(p.text)} for p in example.flyers
                ],
            }
        )
        if len(samples) < 16 and example.flyers:
            written = cv2.imdecode(
                encoded, cv2.IMREAD_COLOR
            )  # the sheet shows what was written, JPEG and all
            samples.append((np.asarray(written), [p.xyxy for p in example.flyers]))
    seconds = time.perf_counter() - started
    with (out / "flyers.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    cv2.imwrite(str(out / "contact_sheet.png"), contact_sheet(samples))
    header = (
        "# Synthetic posted flyers on real backgrounds (vision/data/flyers.py); no real flyer labels.\n"
        f"# streetorder data synth-flyers --backgrounds {' '.join(str(b) for b in backgrounds)} "
        f"--out {out} --count {count} --seed {seed}\n"
        f"# fonts: {', '.join(fonts)}\n"
        "# Classes other than flyer are the background datasets' own labels that all of them share.\n"
    )
    body = yaml.safe_dump(
        {
            "path": str(out.resolve()),
            "train": "images/train",
            "val": "images/val",
            "names": dict(enumerate(classes)),
        },
        allow_unicode=True,
        sort_keys=False,
    )
    (out / "data.yaml").write_text(header + body, encoding="utf-8")
    quantiles = np.percentile(heights, [10, 50, 90]) if heights else np.zeros(3)
    summary = Summary(
        str(out),
        count,
        len(heights),
        classes,
        round(seconds, 1),
        round(count / seconds, 2),
        {f"p{q}": float(v) for q, v in zip((10, 50, 90), quantiles, strict=True)},
    )
    (out / "synth.json").write_text(
        json.dumps(
            {
                **asdict(summary),
                "seed": seed,
                "fonts": list(fonts),
                "backgrounds": [str(b) for b in backgrounds],
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return summary
