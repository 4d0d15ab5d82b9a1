"""Posted flyers (非法小广告) found by reading them: text lines, notices, a decision per notice.

The detector's `flyer` class is trained on synthetic sheets only and barely transfers to real
photos; what makes a paper a small ad is what it says (a phone number, a QR code, 开锁 / 办证 /
招聘 ...). PP-OCR (the project's one engine, `vision.detect.ocr.ocr_engine`) reads it:

1. text detection over the photo at `find_side` (the cheap step: no recognition yet);
2. lines grouped into notices (close, of similar size, horizontal or vertical);
3. notices lying on a vehicle, a shop sign or a window poster the detector found are dropped with
   that reason, unread; the largest `max_notices` others are recognised;
4. a decision per notice: a small ad when it carries a phone number (mobile, landline, 400/800), a
   QR code or the small-ad vocabulary, and not when it reads as a number plate (the privacy
   module's `looks_like_plate`), a street or traffic sign, or a shop sign.

`combine` merges the readings with the detector: either may propose a flyer, agreement raises the
confidence, and a detector flyer whose text reads as a plate or a sign is scaled down. Rules,
reasons and measured numbers: docs/flyers.md; thresholds and word lists: configs/flyers.yaml.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import supervision as sv
from pydantic import Field, field_validator

from vision.core.boxes import scaled_size
from vision.core.config import ConfigError, ConfigModel, load_config_file
from vision.core.detector import KEEP_CONFIDENCE, subset
from vision.core.taxonomy import Taxonomy
from vision.detect.ocr import class_ids, extract_phones, ocr_engine
from vision.detect.privacy import looks_like_plate

SMALL_AD = "small_ad"
NOT_SMALL_AD = "not_small_ad"
MAX_QR_PAYLOAD = 512  # characters of a QR payload kept as evidence
ScanMode = Literal["off", "detector", "all"]


class FlyerRulesError(ConfigError):
    """A configs/flyers.yaml that cannot be used; the message names the file and the field."""


# A small ad's confidence from each signal alone, and what a second signal adds (configs/flyers.yaml).
SIGNAL_CONFIDENCE = {"phone": 0.6, "qr": 0.5, "words": 0.4, "second_signal": 0.15}


class FlyerRules(ConfigModel):
    """What configs/flyers.yaml says (its comments explain each value); validated by the one loader."""

    scan: ScanMode = "detector"
    grids: tuple[str, ...] = ()
    propose_confidence: float = Field(default=0.25, ge=0, le=1)
    find_side: int = Field(default=960, ge=64, le=8192)
    read_side: int = Field(default=1000, ge=64, le=8192)
    min_line_px: float = Field(default=7.0, ge=0)
    max_proposals: int = Field(default=6, ge=1)
    zoom_char_px: float = Field(default=12.0, ge=1)
    zoom_char_share: float = Field(default=0.1, gt=0, le=1)
    zoom_max: float = Field(default=4.0, ge=1)
    zoom_max_side: int = Field(default=240, ge=32)
    max_lines: int = Field(default=600, ge=1)
    max_notices: int = Field(default=12, ge=1)
    max_notice_lines: int = Field(default=24, ge=1)
    full_reads: int = Field(default=2, ge=0)
    full_read_grow: float = Field(default=1.0, ge=0)
    join_gap: float = Field(default=1.6, ge=0)
    size_ratio: float = Field(default=2.6, ge=1)
    qr_margin: float = Field(default=0.6, ge=0)
    min_text_score: float = Field(default=0.5, ge=0, le=1)
    confidence: dict[str, float] = Field(default_factory=lambda: dict(SIGNAL_CONFIDENCE))
    veto_factor: float = Field(default=0.3, ge=0, le=1)
    unconfirmed_factor: float = Field(default=0.55, ge=0, le=1)
    agreement_iou: float = Field(default=0.2, ge=0, le=1)
    context_max_cover: float = Field(default=0.5, ge=0, le=1)
    context_same_iou: float = Field(default=0.6, ge=0, le=1)
    not_on: dict[str, str] = Field(default_factory=dict)
    words: tuple[str, ...] = ()
    ignore_phrases: tuple[str, ...] = ()
    shop_suffixes: tuple[str, ...] = ()
    street_signs: tuple[re.Pattern[str], ...] = ()
    official_issuers: tuple[str, ...] = ()
    official_notices: tuple[str, ...] = ()

    @field_validator("confidence")
    @classmethod
    def _every_signal(cls, given: dict[str, float]) -> dict[str, float]:
        """A file may name some signals; the others keep their defaults."""
        if unknown := sorted(set(given) - set(SIGNAL_CONFIDENCE)):
            expected = ", ".join(SIGNAL_CONFIDENCE)
            raise ValueError(f"unknown signal(s) {', '.join(unknown)}; expected {expected}")
        if bad := [k for k, v in given.items() if not 0 <= v <= 1]:
            raise ValueError(f"{', '.join(bad)}: a confidence lies in 0..1")
        return {**SIGNAL_CONFIDENCE, **given}

    def reads_in_full(self, grid_code: str | None) -> bool:
        """Whether a photo taken in this unit grid is searched whole (`all`, or a flyer zone)."""
        return self.scan == "all" or (grid_code is not None and grid_code in self.grids)

    def with_scan(self, scan: ScanMode) -> FlyerRules:
        """The same rules with another scan mode (the command line's --flyers)."""
        return self.model_copy(update={"scan": scan})


def detection_floor(rules: FlyerRules | None) -> float:
    """The lowest score a detector must keep for this reader: its proposals start at
    propose_confidence, which may be set below the backends' usual floor (0.25); a detector cut
    there never handed the reader a flyer box in between."""
    return KEEP_CONFIDENCE if rules is None else min(KEEP_CONFIDENCE, rules.propose_confidence)


def load_flyer_rules(path: Path | str) -> FlyerRules:
    """`<configs_dir>/flyers.yaml` (or another file of the same form); FlyerRulesError names a bad field."""
    return _load_rules(Path(path))


@cache
def _load_rules(path: Path) -> FlyerRules:
    return load_config_file(path, FlyerRules, error=FlyerRulesError)


@dataclass(frozen=True)
class Notice:
    """One group of text lines and what was decided about it; boxes in the photo's pixels."""

    xyxy: tuple[float, float, float, float]
    lines: tuple[str, ...] = ()  # recognised text, reading order; empty when not recognised
    phones: tuple[str, ...] = ()
    qr: tuple[str, ...] = ()  # QR payloads, printable
    words: tuple[str, ...] = ()  # small-ad vocabulary found
    verdict: str = NOT_SMALL_AD
    reasons: tuple[str, ...] = ()
    confidence: float = 0.0
    ruled_out: bool = False  # a plate, a sign, livery: text that is known not to be an ad

    @property
    def is_small_ad(self) -> bool:
        return self.verdict == SMALL_AD

    def as_evidence(self) -> dict[str, Any]:
        """What a flyer's evidence keeps (Evidence.extra["flyers"]): text, numbers, QR and box."""
        return {
            "xyxy": [round(float(v), 1) for v in self.xyxy],
            "text": "\n".join(self.lines),
            "phones": list(self.phones),
            "qr": list(self.qr),
            "words": list(self.words),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "confidence": round(self.confidence, 3),
            "ruled_out": self.ruled_out,
        }


@dataclass(frozen=True)
class Reading:
    """The notices of one photo and what reading them cost."""

    notices: tuple[Notice, ...]
    lines_found: int
    seconds: float

    @property
    def small_ads(self) -> tuple[Notice, ...]:
        return tuple(n for n in self.notices if n.is_small_ad)


# --------------------------------------------------------------------------------- geometry


def quad_boxes(quads: np.ndarray) -> np.ndarray:
    """Axis-aligned xyxy of (N, 4, 2) quadrilaterals."""
    if len(quads) == 0:
        return np.zeros((0, 4), dtype=np.float32)
    return np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1).astype(np.float32)


def group_lines(boxes: np.ndarray, join_gap: float, size_ratio: float) -> list[list[int]]:
    """Lines (xyxy) grouped into notices: connected components of "close and of similar size".

    A line's size is its shorter side (the character height of a horizontal line, the width of a
    vertical column). Two lines join when the gap between their boxes, on either axis, is at most
    `join_gap` x the smaller size and the sizes differ by at most `size_ratio`: the title and
    the phone line of one flyer join, two flyers a hand apart do not, nor a shop sign's large
    letters with the small print beside them. Groups come in order of their first line.
    """
    count = len(boxes)
    if count == 0:
        return []
    sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).clip(min=1)
    gap_x = np.maximum(boxes[None, :, 0] - boxes[:, None, 2], boxes[:, None, 0] - boxes[None, :, 2])
    gap_y = np.maximum(boxes[None, :, 1] - boxes[:, None, 3], boxes[:, None, 1] - boxes[None, :, 3])
    smaller = np.minimum(sizes[:, None], sizes[None, :])
    larger = np.maximum(sizes[:, None], sizes[None, :])
    near = (np.maximum(gap_x, gap_y).clip(min=0) <= join_gap * smaller) & (larger <= size_ratio * smaller)
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(near, 1)), strict=True):
        parent[root(int(i))] = root(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(count):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def distinct_lines(boxes: np.ndarray, same: float = 0.5) -> np.ndarray:
    """Indices of lines (xyxy) kept when the same line was found twice (overlapping regions, the
    whole photo and a zoom): a line whose IoU with an earlier kept one reaches `same` is dropped."""
    kept: list[int] = []
    for i in range(len(boxes)):
        if not kept or sv.box_iou_batch(boxes[i : i + 1], boxes[kept])[0].max() < same:
            kept.append(i)
    return np.asarray(kept, dtype=int)


def inside_share(box: Sequence[float] | np.ndarray, others: np.ndarray) -> np.ndarray:
    """The share of `box`'s area inside each of `others` (xyxy)."""
    if len(others) == 0:
        return np.zeros(0)
    x1, y1, x2, y2 = box
    w = (np.minimum(x2, others[:, 2]) - np.maximum(x1, others[:, 0])).clip(min=0)
    h = (np.minimum(y2, others[:, 3]) - np.maximum(y1, others[:, 1])).clip(min=0)
    return np.asarray(w * h / max((x2 - x1) * (y2 - y1), 1e-6))


def line_crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """A text line cut out upright; a vertical column (stacked characters, usual on poles) is cut
    into square cells, one a character (`character_pitch`), laid side by side, so the horizontal
    recogniser reads it in order. The cells are trimmed to the column's ink: the text detector's
    box is often twice as wide as the characters, and cells as wide as the box squeezed them."""
    width = max(int(np.linalg.norm(quad[0] - quad[1])), int(np.linalg.norm(quad[2] - quad[3])), 2)
    height = max(int(np.linalg.norm(quad[0] - quad[3])), int(np.linalg.norm(quad[1] - quad[2])), 2)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if height >= 1.5 * width:
        gray = (crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)).astype(np.float32)
        cells = max(1, round(height / character_pitch(gray)))
        crop = crop[:, slice(*ink_span(gray))]
        step = height / cells
        side = max(2, round(step))
        crop = np.hstack(
            [cv2.resize(crop[round(k * step) : round((k + 1) * step)], (side, side)) for k in range(cells)]
        )
    return crop


def ink_span(gray: np.ndarray) -> tuple[int, int]:
    """The columns of an upright grayscale crop that hold its characters (ink differing from the
    median tone by at least half the strongest column's), widened by an eighth on each side."""
    contrast = np.abs(gray - np.median(gray)).mean(axis=0)
    if contrast.max() <= 0:
        return 0, gray.shape[1]
    inked = np.nonzero(contrast >= 0.5 * contrast.max())[0]
    left, right = int(inked.min()), int(inked.max()) + 1
    pad = max(1, (right - left) // 8)
    return max(0, left - pad), min(gray.shape[1], right + pad)


def character_pitch(gray: np.ndarray) -> float:
    """The spacing of stacked characters in an upright grayscale column: the period of its rows' ink,
    the first autocorrelation peak between 0.3 and 2 column widths that reaches 0.6 of the
    highest (the highest alone is often two or three characters: digits are set closer than their
    column is wide); the column's width when there is none. Characters are often set wider apart
    than the column is wide too (开锁 and a number down a 33 px column at a 40 px pitch)."""
    width = gray.shape[1]
    ink = gray.mean(axis=1)
    ink -= ink.mean()
    low, high = max(1, int(0.3 * width)), min(len(ink) - 1, int(2.0 * width))
    if high <= low:
        return float(width)
    lags = np.array([float(np.dot(ink[:-lag], ink[lag:])) / (len(ink) - lag) for lag in range(low, high + 1)])
    if lags.max() <= 0:
        return float(width)
    peaks = [
        i
        for i in range(1, len(lags) - 1)
        if lags[i] >= lags[i - 1] and lags[i] >= lags[i + 1] and lags[i] >= 0.6 * lags.max()
    ]
    return float(low + (peaks[0] if peaks else int(np.argmax(lags))))


def read_qr(image: np.ndarray, box: Sequence[float], margin: float) -> tuple[str, ...]:
    """Payloads of a QR code in `box` grown by `margin`; binary junk is kept as printable text."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    grow = margin * max(x2 - x1, y2 - y1)
    left, top = int(max(0, x1 - grow)), int(max(0, y1 - grow))
    right, bottom = int(min(width, x2 + grow)), int(min(height, y2 + grow))
    if right - left < 21 or bottom - top < 21:  # a QR code has at least 21 modules a side
        return ()
    try:
        payload, points, _ = cv2.QRCodeDetector().detectAndDecode(image[top:bottom, left:right])
    except (cv2.error, UnicodeDecodeError):  # a code OpenCV finds but cannot decode as text
        return ()
    if points is None or not payload:
        return ()
    printable = "".join(c if c.isprintable() else "\ufffd" for c in payload)
    return (printable[:MAX_QR_PAYLOAD],)


# --------------------------------------------------------------------------------- decision


def vocabulary(text: str, rules: FlyerRules) -> tuple[str, ...]:
    """The small-ad words in `text`, looked for after `ignore_phrases` are taken out."""
    for phrase in rules.ignore_phrases:
        text = text.replace(phrase, " ")
    return tuple(w for w in rules.words if w in text)


def decide(
    lines: Sequence[str], qr: Sequence[str], rules: FlyerRules, sizes: Sequence[float] | None = None
) -> Notice:
    """What one recognised notice is (its box left at zero: the caller places it).

    Ruled out first, whatever else it carries: a number plate (the privacy module's rule) without
    a phone or a small-ad word, a street or traffic sign without a phone, a shop sign (its
    largest line, `sizes` being the lines' character sizes, ends like a shop's name; or any line
    does and there is no small-ad word: a maker's label), an official notice (it names a community,
    a residents' committee, a street office or the property manager, and says 通知 / 公告 or has no
    small-ad word). Vocabulary is looked for after `ignore_phrases` are taken out (可回收 on bins is
    not 回收). Then a
    small ad when it carries a phone number, a QR code or small-ad words, the confidence of the
    strongest signal plus `second_signal` for each further kind.
    """
    text = unicodedata.normalize("NFKC", "\n".join(lines))
    phones = tuple(extract_phones(text))
    words = vocabulary(text, rules)
    read = tuple(line for line in lines if line.strip())
    found = Notice((0, 0, 0, 0), read, phones, tuple(qr), words)
    title = read[int(np.argmax(sizes))] if read and sizes is not None and len(sizes) == len(read) else None
    if not phones and not words and any(looks_like_plate(line) for line in read):
        return replace(found, reasons=("reads as a number plate",), ruled_out=True)
    signs = [line for line in read if not vocabulary(line, rules)]  # 管道疏道 (管道疏通 misread) is no road
    if not phones and any(p.search(line) for line in signs for p in rules.street_signs):
        return replace(found, reasons=("reads as a street or traffic sign",), ruled_out=True)
    if title is not None and title.strip().endswith(rules.shop_suffixes):
        return replace(found, reasons=(f"a shop sign ({title.strip()})",), ruled_out=True)
    label = next((line.strip() for line in read if line.strip().endswith(rules.shop_suffixes)), None)
    if label is not None and not words:
        return replace(found, reasons=(f"a shop sign or maker's label ({label})",), ruled_out=True)
    issuer = next((w for w in rules.official_issuers if w in text), None)
    if issuer is not None and (not words or any(w in text for w in rules.official_notices)):
        return replace(found, reasons=(f"an official notice ({issuer})",), ruled_out=True)
    signals = {
        "phone": f"phone {', '.join(phones)}" if phones else "",
        "qr": "QR code" if qr else "",
        "words": f"small-ad words {', '.join(words)}" if words else "",
    }
    present = [kind for kind, reason in signals.items() if reason]
    if not present:
        return replace(found, reasons=("no phone number, QR code or small-ad word",))
    base = max(rules.confidence[kind] for kind in present)
    confidence = min(0.95, base + rules.confidence["second_signal"] * (len(present) - 1))
    return replace(found, verdict=SMALL_AD, reasons=tuple(signals[k] for k in present), confidence=confidence)


def _area(xyxy: Sequence[float] | np.ndarray) -> float:
    return float((xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]))


# ----------------------------------------------------------------------------------- reader


class FlyerFinder:
    """Reads photos for small ads; one per process (the OCR engine is shared by threads)."""

    def __init__(self, rules: FlyerRules, taxonomy: Taxonomy, engine: Any = None) -> None:
        self.rules = rules
        self.taxonomy = taxonomy
        self._engine = engine
        self._loading = threading.Lock()
        self.flyer = self.taxonomy.names.index("flyer")
        self.not_on = {
            self.taxonomy.names.index(name): reason
            for name, reason in self.rules.not_on.items()
            if name in self.taxonomy.names
        }

    @property
    def engine(self) -> Any:
        """PP-OCR, loaded on first use (about a second): a scan whose photos need no reading never
        loads it."""
        with self._loading:
            if self._engine is None:
                self._engine = ocr_engine()
            return self._engine

    def find_lines(self, image: np.ndarray, zoom: float = 1.0) -> np.ndarray:
        """Text line quadrilaterals (N, 4, 2) in `image`'s pixels, at most max_lines, largest first.

        Detection runs at find_side at most, `zoom` times larger for a small crop (up to
        zoom_max_side); lines thinner than min_line_px there are dropped (unreadable).
        """
        side = max(image.shape[:2])
        scale = min(1.0, self.rules.find_side / side)
        if zoom > 1:
            scale = max(scale, min(zoom, self.rules.zoom_max_side / side, self.rules.find_side / side))
        small = (
            image
            if scale == 1.0
            else cv2.resize(
                image, scaled_size(image.shape[1], image.shape[0], scale), interpolation=cv2.INTER_AREA
            )
        )
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        quads, _ = self.engine.text_det(small)
        if quads is None or len(quads) == 0:
            return np.zeros((0, 4, 2), dtype=np.float32)
        quads = np.asarray(quads, dtype=np.float32)
        boxes = quad_boxes(quads)
        sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = np.nonzero(sizes >= self.rules.min_line_px)[0]
        areas = (boxes[keep, 2] - boxes[keep, 0]) * (boxes[keep, 3] - boxes[keep, 1])
        keep = keep[np.argsort(-areas, kind="stable")][: self.rules.max_lines]
        return quads[keep] / scale

    def read(
        self,
        image: np.ndarray,
        detections: sv.Detections | None = None,
        regions: np.ndarray | None = None,
        *,
        enlarge: bool = True,
    ) -> Reading:
        """The notices of a photo (BGR, any size; `detections` in its pixels).

        `regions` (xyxy) restricts the search to those boxes, each grown by half its size (the
        detector's proposals in `detector` mode); None searches the whole photo, and also enlarged
        where the print is small unless `enlarge` is False (a region already at full resolution).
        """
        started = time.perf_counter()
        detections = detections if detections is not None else sv.Detections.empty()
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        quads = self._lines_in(image, regions, detections, enlarge)
        boxes = quad_boxes(quads)
        groups = [g for g in group_lines(boxes, self.rules.join_gap, self.rules.size_ratio)]
        notices: list[Notice] = []
        to_read: list[tuple[list[int], tuple[float, float, float, float]]] = []
        for group in groups:
            x1, y1 = boxes[group, 0].min(), boxes[group, 1].min()
            x2, y2 = boxes[group, 2].max(), boxes[group, 3].max()
            xyxy = (float(x1), float(y1), float(x2), float(y2))
            covered = self.lies_on(xyxy, detections)
            if covered is not None:
                notices.append(Notice(xyxy, reasons=(covered,), ruled_out=True))
            elif len(group) > self.rules.max_notice_lines:
                notices.append(Notice(xyxy, reasons=(f"{len(group)} lines: a wall of text, not a small ad",)))
            else:
                to_read.append((group, xyxy))
        to_read.sort(key=lambda item: -_area(item[1]))
        for group, xyxy in to_read[: self.rules.max_notices]:
            notices.append(self._recognise(image, quads, boxes, group, xyxy))
        for _, xyxy in to_read[self.rules.max_notices :]:
            notices.append(Notice(xyxy, reasons=(f"not read: beyond the {self.rules.max_notices} largest",)))
        for region in [] if regions is None else regions:  # a QR code alone on a proposed flyer
            if not any(inside_share(n.xyxy, np.asarray([region]))[0] > 0 for n in notices):
                qr = read_qr(image, region, 0.1)
                if qr:
                    x1, y1, x2, y2 = (float(v) for v in region)
                    notices.append(replace(decide([], qr, self.rules), xyxy=(x1, y1, x2, y2)))
        return Reading(tuple(notices), len(quads), time.perf_counter() - started)

    def _lines_in(
        self, image: np.ndarray, regions: np.ndarray | None, detections: sv.Detections, enlarge: bool
    ) -> np.ndarray:
        """Text lines in the `regions` (grown by half their size), or over the whole photo and then,
        enlarged, around the detector's proposals and the notices in small print (`all` mode); at
        most max_proposals regions are read enlarged, duplicate lines dropped."""
        if regions is not None:
            whole = np.zeros((0, 4, 2), dtype=np.float32)
            zoom_at = [(box, self._likely_char(box)) for box in np.asarray(regions).reshape(-1, 4)]
        elif not enlarge:
            whole, zoom_at = self.find_lines(image), []
        else:
            whole = self.find_lines(image)
            zoom_at = [(box, self._likely_char(box)) for box in self.proposals(detections)]
            boxes = quad_boxes(whole)
            sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            small = []
            for group in group_lines(boxes, self.rules.join_gap, self.rules.size_ratio):
                if len(group) <= self.rules.max_notice_lines and sizes[group].max() < self.rules.zoom_char_px:
                    box = np.concatenate([boxes[group, :2].min(axis=0), boxes[group, 2:].max(axis=0)])
                    small.append((box, float(np.median(sizes[group]))))
            small.sort(key=lambda item: -_area(item[0]))
            zoom_at += small
        height, width = image.shape[:2]
        found = []  # the enlarged readings first: they place small print better
        for (x1, y1, x2, y2), likely in zoom_at[: self.rules.max_proposals]:
            grow = 0.5 * max(x2 - x1, y2 - y1)
            left, top = int(max(0, x1 - grow)), int(max(0, y1 - grow))
            right, bottom = int(min(width, x2 + grow)), int(min(height, y2 + grow))
            if right - left < 8 or bottom - top < 8:
                continue
            zoom = min(self.rules.zoom_char_px / max(likely, 1.0), self.rules.zoom_max)
            quads = self.find_lines(image[top:bottom, left:right], zoom)
            found.append(quads + np.array([left, top], dtype=np.float32))
        quads = np.concatenate([*found, whole])
        return quads[distinct_lines(quad_boxes(quads))][: self.rules.max_lines]

    def _likely_char(self, box: np.ndarray) -> float:
        """A flyer's likely character height: zoom_char_share of its shorter side."""
        return self.rules.zoom_char_share * float(min(box[2] - box[0], box[3] - box[1]))

    def _recognise(
        self,
        image: np.ndarray,
        quads: np.ndarray,
        boxes: np.ndarray,
        group: list[int],
        xyxy: tuple[float, float, float, float],
    ) -> Notice:
        order = sorted(group, key=lambda i: (round(float(boxes[i, 1]) / 8), float(boxes[i, 0])))
        crops = [line_crop(image, quads[i]) for i in order]
        results, _ = self.engine.text_rec(crops)
        kept = [
            (str(text), float(min(boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1])))
            for i, (text, score) in zip(order, results, strict=True)
            if float(score) >= self.rules.min_text_score and str(text).strip()
        ]
        lines = tuple(text for text, _ in kept)
        qr = read_qr(image, xyxy, self.rules.qr_margin)
        return replace(decide(lines, qr, self.rules, [size for _, size in kept]), xyxy=xyxy)

    def check_after(self, image: np.ndarray, numbers: Sequence[str]) -> dict[str, Any]:
        """The after-photo check of a flyer case: which of the numbers its flyers carried can still
        be read anywhere on the photo taken after handling (the whole photo is read)."""
        reading = self.read(image)
        read = {phone for notice in reading.notices for phone in notice.phones}
        still = [number for number in numbers if number in read]
        return {
            "numbers": list(numbers),
            "still_readable": still,
            "verdict": "number_still_readable" if still else "number_not_readable",
            "read_seconds": round(reading.seconds, 3),
        }

    # ------------------------------------------------------------------------- with the detector

    def scan_photo(
        self,
        detections: sv.Detections,
        size: tuple[int, int],
        load_image: Callable[[int], np.ndarray],
        *,
        full: bool,
    ) -> sv.Detections:
        """A scanned photo's detections (in its own pixels, `size` = width, height) with its flyers read
        (`read_scanned`, then `combine`)."""
        reading = self.read_scanned(detections, size, load_image, full=full)
        return detections if reading is None else self.combine(detections, reading)

    def read_scanned(
        self,
        detections: sv.Detections,
        size: tuple[int, int],
        load_image: Callable[[int], np.ndarray],
        *,
        full: bool,
    ) -> Reading | None:
        """The reading a scan makes of a photo, its notices in the photo's own pixels; None when the
        gate reads nothing.

        The gate: in full (`full`: `all` mode or a flyer zone), else only the detector's proposals
        in `detector` mode, else nothing; a photo with nothing to read is never decoded again.
        `load_image(side)` decodes the photo at least `side` pixels long (the scan's reduced decode).
        """
        regions = None if full else self.proposals(detections)
        if regions is not None and (self.rules.scan == "off" or len(regions) == 0):
            return None
        image = load_image(self.rules.read_side)
        factors = np.array([image.shape[1] / size[0], image.shape[0] / size[1]] * 2, dtype=np.float32)
        scaled = sv.Detections(
            xyxy=detections.xyxy.reshape(-1, 4) * factors,
            confidence=detections.confidence,
            class_id=detections.class_id,
            data=dict(detections.data),
        )
        reading = self.read(image, scaled, None if regions is None else regions * factors)
        notices = []
        for notice in reading.notices:
            x1, y1, x2, y2 = (float(v) for v in np.asarray(notice.xyxy) / factors)
            notices.append(replace(notice, xyxy=(x1, y1, x2, y2)))
        reading = replace(reading, notices=tuple(notices))
        # read in full (`all` mode, a flyer zone: where flyers are the point) from a reduced decode:
        # the photo's pixels say more. In `detector` mode it read no more numbers on val-x6 for +40 %
        # of the reader's CPU, so it is not done there.
        if full and max(image.shape[:2]) < max(size):
            reading = self.read_again(reading, size, image, load_image, self.proposals(detections))
        return reading

    def read_again(
        self,
        reading: Reading,
        size: tuple[int, int],
        image: np.ndarray,
        load_image: Callable[[int], np.ndarray],
        proposals: np.ndarray,
    ) -> Reading:
        """The reading (notices in the photo's pixels, `image` the reduced decode it was made from)
        with its candidates that carry text but no phone number read again: small ads (by their
        words or QR code) first, then notices on a detector proposal (`proposals`, the photo's
        pixels), the largest first, at most `full_reads`; text elsewhere (shop fronts, signs) is
        not read again, so it costs nothing and cannot turn into a small ad. Each is read, grown
        by `full_read_grow` x its size and not enlarged further, from the pixels of the photo: a
        12 MP photo's phone line is a few pixels tall where the reader looked while its title is
        read. A region is read at find_side at most, so the photo is decoded
        once more only as large as the most demanding region needs (the full pixels for a small
        one; libjpeg's 1/2 or 1/4 scale for a larger), and not at all when the reduced decode holds
        enough. A notice takes the second reading only when a number is found there, so it never
        loses what the first said."""
        started = time.perf_counter()
        notices = list(reading.notices)
        wanted = [
            i
            for i, n in enumerate(notices)
            if not n.ruled_out
            and not n.phones
            and (n.lines or n.qr)
            and (n.is_small_ad or any(self._same(box, n.xyxy) for box in proposals))
        ]
        wanted.sort(key=lambda i: (not notices[i].is_small_ad, -_area(notices[i].xyxy)))
        regions = {}
        for i in wanted[: self.rules.full_reads]:
            x1, y1, x2, y2 = notices[i].xyxy
            grow = self.rules.full_read_grow * max(x2 - x1, y2 - y1)
            left, top = max(0.0, x1 - grow), max(0.0, y1 - grow)
            right, bottom = min(float(size[0]), x2 + grow), min(float(size[1]), y2 + grow)
            regions[i] = np.array([left, top, right, bottom], dtype=np.float32)
        if not regions:
            return reading
        need = max(
            max(size) * min(1.0, self.rules.find_side / float(max(r[2] - r[0], r[3] - r[1], 1.0)))
            for r in regions.values()
        )
        if need > max(image.shape[:2]):
            image = load_image(int(np.ceil(need)))
        factors = np.array([image.shape[1] / size[0], image.shape[0] / size[1]] * 2, dtype=np.float32)
        for i, region in regions.items():
            left, top, right, bottom = (int(v) for v in region * factors)
            if right - left < 8 or bottom - top < 8:
                continue
            found = self.read(image[top:bottom, left:right], enlarge=False)
            box = np.asarray([notices[i].xyxy], dtype=np.float32) * factors - [left, top, left, top]
            # the notice's own lines, read there with those missed the first time (its phone line)
            lines = [line for n in found.notices if inside_share(n.xyxy, box)[0] > 0 for line in n.lines]
            again = decide(lines, notices[i].qr, self.rules)
            if again.phones:
                reasons = (*again.reasons, "read again from the photo's pixels")
                notices[i] = replace(again, xyxy=notices[i].xyxy, reasons=reasons)
        seconds = reading.seconds + time.perf_counter() - started
        return replace(reading, notices=tuple(notices), seconds=seconds)

    def lies_on(self, xyxy: Sequence[float] | np.ndarray, detections: sv.Detections) -> str | None:
        """The `not_on` reason of a detection (a car, a shop sign ...) at its class's min_confidence
        that holds at least half of `xyxy` while `xyxy` covers at most `context_max_cover` of it:
        text filling a "truck" box is the paper the detector took for a truck, not its livery. One
        such filled box settles it: a larger, looser box of the same mistake around the paper (the
        detector often draws two) is no vehicle the text could be painted on either."""
        confidences = detections.confidence if detections.confidence is not None else np.ones(len(detections))
        flyers = class_ids(detections) == self.flyer
        reason = None
        for box, class_id, confidence in zip(
            detections.xyxy, class_ids(detections), confidences, strict=True
        ):
            if int(class_id) not in self.not_on:
                continue
            if confidence < self.taxonomy.classes[int(class_id)].min_confidence:
                continue
            if flyers.any():  # the detector calls the same box a flyer, more surely: no context
                same = sv.box_iou_batch(box[None], detections.xyxy[flyers])[0] >= self.rules.context_same_iou
                if (same & (confidences[flyers] >= confidence)).any():
                    continue
            area = max(_area(box), 1e-6)
            held = inside_share(xyxy, box[None])[0]
            cover = held * _area(xyxy) / area
            if held >= 0.5 and cover > self.rules.context_max_cover:
                return None  # the detector's box is the paper itself
            if held >= 0.5 and reason is None:
                reason = self.not_on[int(class_id)]
        return reason

    def proposals(self, detections: sv.Detections) -> np.ndarray:
        """Detector flyer boxes read in `detector` mode (xyxy): the `max_proposals` most confident at
        propose_confidence or above."""
        return np.asarray(detections.xyxy[self._proposed(detections)], dtype=np.float32).reshape(-1, 4)

    def _proposed(self, detections: sv.Detections) -> np.ndarray:
        if len(detections) == 0 or detections.confidence is None:
            return np.zeros(0, dtype=int)
        confidence = np.asarray(detections.confidence)
        chosen = np.nonzero(
            (class_ids(detections) == self.flyer) & (confidence >= self.rules.propose_confidence)
        )[0]
        return chosen[np.argsort(-confidence[chosen], kind="stable")][: self.rules.max_proposals]

    def combine(self, detections: sv.Detections, reading: Reading) -> sv.Detections:
        """The detector's findings with the reader's: either proposes, agreement raises confidence.

        A detector flyer overlapping a small ad (IoU >= agreement_iou, or one inside the other)
        gets 1 - (1 - reader) x (1 - detector) and the reading; one overlapping notices ruled out
        (a plate, a sign, livery) is scaled by veto_factor; one read (at propose_confidence or
        above: `combine` follows a `read` of its region) where no small ad was found is scaled by
        unconfirmed_factor; small ads no detector box holds are added as flyers. data["flyer"] holds
        each flyer's notice evidence (or None). A small ad confirms one detector box: a second,
        less confident flyer box on the same paper (the detector often draws two that NMS keeps) is
        dropped, so one flyer is one finding with its reading once.
        """
        count = len(detections)
        confidence = (
            np.asarray(detections.confidence, dtype=np.float32).copy()
            if detections.confidence is not None
            else np.ones(count, dtype=np.float32)
        )
        evidence: list[dict[str, Any] | None] = [None] * count
        ids = class_ids(detections)
        matched: set[int] = set()
        confirmed: dict[int, tuple[float, float, float, float]] = {}  # small ad -> the box it confirmed
        keep = np.ones(count, dtype=bool)
        proposed = set(self._proposed(detections).tolist())
        flyers = np.nonzero(ids == self.flyer)[0]
        for k in flyers[np.argsort(-confidence[flyers], kind="stable")]:
            box = detections.xyxy[k]
            overlapping = [i for i, n in enumerate(reading.notices) if self._same(box, n.xyxy)]
            ads = [i for i in overlapping if reading.notices[i].is_small_ad]
            if ads:
                best = max(ads, key=lambda i: reading.notices[i].confidence)
                if best in confirmed and self._same(box, confirmed[best]):
                    keep[k] = False  # the same paper boxed twice
                    continue
                x1, y1, x2, y2 = (float(v) for v in box)
                confirmed.setdefault(best, (x1, y1, x2, y2))
                notice = reading.notices[best]
                confidence[k] = 1 - (1 - notice.confidence) * (1 - confidence[k])
                evidence[k] = {**notice.as_evidence(), "source": "detector+reader"}
                matched.update(ads)
            elif any(reading.notices[i].ruled_out and reading.notices[i].lines for i in overlapping):
                ruled_out = next(
                    reading.notices[i]
                    for i in overlapping
                    if reading.notices[i].ruled_out and reading.notices[i].lines
                )
                confidence[k] *= self.rules.veto_factor
                evidence[k] = {**ruled_out.as_evidence(), "source": "detector, vetoed by reader"}
            elif k in proposed:  # read, and no small ad found there
                confidence[k] *= self.rules.unconfirmed_factor
                text = [line for i in overlapping for line in reading.notices[i].lines]
                context = [
                    r for i in overlapping if reading.notices[i].ruled_out for r in reading.notices[i].reasons
                ]
                reason = (
                    "read: no phone number, QR code or small-ad word"
                    if text
                    else f"not read: {context[0]}"
                    if context
                    else "no legible text found"
                )
                unread = Notice(
                    (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    tuple(text),
                    reasons=(reason,),
                )
                evidence[k] = {**unread.as_evidence(), "source": "detector, not confirmed by reader"}
        added = [n for i, n in enumerate(reading.notices) if n.is_small_ad and i not in matched]
        data: dict[str, Any] = {}
        for key, values in detections.data.items():
            fill = "flyer" if key == "class_name" else None
            data[key] = np.concatenate(
                [np.asarray(values, dtype=object), np.array([fill] * len(added), dtype=object)]
            )
        data["flyer"] = np.array(
            evidence + [{**n.as_evidence(), "source": "reader"} for n in added] or [], dtype=object
        )
        if not count and not added:
            return sv.Detections.empty()
        combined = sv.Detections(
            xyxy=np.concatenate(
                [detections.xyxy.reshape(-1, 4), np.array([n.xyxy for n in added]).reshape(-1, 4)]
            ).astype(np.float32),
            confidence=np.concatenate([confidence, [n.confidence for n in added]]).astype(np.float32),
            class_id=np.concatenate([ids, np.full(len(added), self.flyer)]).astype(int),
            data=data,
        )
        return subset(combined, np.concatenate([keep, np.ones(len(added), dtype=bool)]))

    def _same(self, box: np.ndarray, notice: tuple[float, float, float, float]) -> bool:
        """One flyer: IoU >= agreement_iou, or most (80 %) of either inside the other."""
        iou = float(sv.box_iou_batch(np.asarray([box]), np.asarray([notice]))[0, 0])
        held = max(inside_share(notice, np.asarray([box]))[0], inside_share(box, np.asarray([notice]))[0])
        return iou >= self.rules.agreement_iou or held >= 0.8
