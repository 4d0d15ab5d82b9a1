"""Contact sheets: many detections on a few pages, so a person can judge each box at a glance.

Each box gets a cell: its number and caption, the box's region with context around it (enlarged
when small), and the whole photo small beside it with the box drawn, so a box is judged in its
scene. Cells are grouped by class (a reviewer decides one class at a time), and an HTML index
links the pages and lists every box with its photo. One implementation serves the review of
proposals (`streetorder data review sheets`) and the look at a new city's photos
(`streetorder evaluate --unlabelled`).
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vision.core.boxes import scaled_size
from vision.core.files import file_href, shown_path
from vision.core.imageio import read_bgr, write_bgr

CROP = 256  # side of a cell's enlarged region
PHOTO = 170  # width of a cell's whole-photo thumbnail
HEADER = 26  # height of a cell's caption strip
GAP = 6
BACKGROUND = (40, 40, 40)
BOX_COLOUR = (0, 0, 255)  # red: visible on streets, walls and sky alike
TEXT = (240, 240, 240)


@dataclass(frozen=True)
class SheetItem:
    """One box to show: `label` is what a person refers to it by (a number), `group` its class."""

    label: str
    group: str
    photo: Path
    xyxy: tuple[float, float, float, float]  # pixels of the photo as `load` returns it
    caption: str = ""


@dataclass(frozen=True)
class SheetPage:
    group: str
    path: Path
    labels: tuple[str, ...]


def context_region(xyxy: Sequence[float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The box with context: as much again around it, at least a 96-px square, clipped to the photo."""
    height, width = shape[:2]
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    side_x, side_y = max(x2 - x1, 96 / 2), max(y2 - y1, 96 / 2)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = max(0, int(cx - side_x)), max(0, int(cy - side_y))
    right, bottom = min(width, int(np.ceil(cx + side_x))), min(height, int(np.ceil(cy + side_y)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scaled (up or down) to fit width x height, keeping its aspect."""
    scale = min(width / image.shape[1], height / image.shape[0])
    size = scaled_size(image.shape[1], image.shape[0], scale)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interpolation)


def cell(photo: np.ndarray, item: SheetItem) -> np.ndarray:
    """One item's cell: caption strip, the region with context, the whole photo small."""
    width = CROP + GAP + PHOTO
    out = np.full((HEADER + CROP, width, 3), BACKGROUND, np.uint8)
    x1, y1, x2, y2 = item.xyxy
    left, top, right, bottom = context_region(item.xyxy, photo.shape)
    region = photo[top:bottom, left:right].copy()
    scale = min(CROP / region.shape[1], CROP / region.shape[0])
    region = fit(region, CROP, CROP)
    corner1 = (round((x1 - left) * scale), round((y1 - top) * scale))
    corner2 = (round((x2 - left) * scale), round((y2 - top) * scale))
    cv2.rectangle(region, corner1, corner2, BOX_COLOUR, 2)
    out[HEADER : HEADER + region.shape[0], : region.shape[1]] = region
    small = fit(photo, PHOTO, CROP)
    ratio = small.shape[1] / photo.shape[1]
    thumb_box = [round(v * ratio) for v in item.xyxy]
    cv2.rectangle(small, (thumb_box[0], thumb_box[1]), (thumb_box[2], thumb_box[3]), BOX_COLOUR, 2)
    out[HEADER : HEADER + small.shape[0], CROP + GAP : CROP + GAP + small.shape[1]] = small
    label = f"#{item.label}"
    cv2.putText(out, label, (4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.65, TEXT, 2, cv2.LINE_AA)
    (label_width, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.65, 2)
    caption_x = max(74, label_width + 12)  # several ids label one whole-photo cell
    caption = item.caption[: max(0, (width - caption_x) // 8)]
    cv2.putText(out, caption, (caption_x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT, 1, cv2.LINE_AA)
    return out


def page(cells: Sequence[np.ndarray], columns: int) -> np.ndarray:
    height, width = cells[0].shape[:2]
    rows = -(-len(cells) // columns)
    out = np.full((rows * (height + GAP) + GAP, columns * (width + GAP) + GAP, 3), 20, np.uint8)
    for index, image in enumerate(cells):
        row, column = divmod(index, columns)
        y, x = GAP + row * (height + GAP), GAP + column * (width + GAP)
        out[y : y + height, x : x + width] = image
    return out


def write_pages(
    items: Sequence[SheetItem],
    out: Path,
    load: Callable[[Path], np.ndarray | None] = read_bgr,
    per_page: int = 12,
    columns: int = 3,
) -> list[SheetPage]:
    """PNG pages `<group>-NN.png` in `out` (pages of an earlier run there are removed), items in
    the order given within each group."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*-[0-9][0-9].png"):
        old.unlink()
    groups: dict[str, list[SheetItem]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    pages: list[SheetPage] = []
    cache: tuple[Path, np.ndarray | None] | None = None
    progress = tqdm(total=len(items), desc="contact sheets", unit="box", file=sys.stderr)
    for group, members in groups.items():
        for start in range(0, len(members), per_page):
            chunk = members[start : start + per_page]
            cells, drawn = [], []
            for item in chunk:
                if cache is None or cache[0] != item.photo:
                    cache = (item.photo, load(item.photo))
                photo = cache[1]
                if photo is not None:  # a photo gone since: its boxes are left out, not fatal
                    cells.append(cell(photo, item))
                    drawn.append(item.label)
                progress.update()
            if not cells:
                continue
            path = out / f"{safe_name(group)}-{start // per_page + 1:02d}.png"
            write_bgr(path, page(cells, columns))
            pages.append(SheetPage(group, path, tuple(drawn)))
    progress.close()
    return pages


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "_"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(value))}</td>" for value in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def photo_link(photo: Path, index: Path) -> str:
    """A link to a photo from the index file, shown by its name."""
    return f'<a href="{html.escape(file_href(photo, index))}">{html.escape(shown_path(photo.name))}</a>'


def write_index(
    items: Sequence[SheetItem], pages: Sequence[SheetPage], index: Path, title: str, preamble: str = ""
) -> Path:
    """index.html: `preamble` (trusted HTML, e.g. count tables), then per group its pages and boxes."""
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1em}img{max-width:100%;display:block;margin:.5em 0}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;"
        "font-size:13px;text-align:left}</style>",
        f"<h1>{html.escape(title)}</h1>",
        preamble,
    ]
    by_label = {item.label: item for item in items}
    for group in dict.fromkeys(p.group for p in pages):
        members = [p for p in pages if p.group == group]
        count = sum(len(p.labels) for p in members)
        parts.append(f"<h2 id='{html.escape(safe_name(group))}'>{html.escape(group)} ({count})</h2>")
        for sheet in members:
            source = html.escape(sheet.path.resolve().relative_to(index.parent.resolve()).as_posix())
            parts.append(f"<img src='{source}' alt='{html.escape(group)}' loading='lazy'>")
        rows = "".join(
            f"<tr><td>#{html.escape(label)}</td><td>{photo_link(by_label[label].photo, index)}</td>"
            f"<td>{html.escape(by_label[label].caption)}</td></tr>"
            for sheet in members
            for label in sheet.labels
        )
        parts.append(f"<table><tr><th>box</th><th>photo</th><th>caption</th></tr>{rows}</table>")
    index.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return index


def write_contact_sheets(
    items: Sequence[SheetItem],
    out: Path,
    title: str,
    preamble: str = "",
    load: Callable[[Path], np.ndarray | None] = read_bgr,
    per_page: int = 12,
) -> tuple[Path, list[SheetPage]]:
    """Pages under `out/sheets/` and `out/index.html`; returns the index and the pages."""
    pages = write_pages(items, out / "sheets", load, per_page)
    return write_index(items, pages, out / "index.html", title, preamble), pages
