"""CJK fonts for the flyers' Chinese text: found among the installed ones, failing clearly when none is."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from PIL import ImageFont

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
