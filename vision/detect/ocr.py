"""OCR evidence for posted flyers: the text and the phone numbers enforcement calls.

PP-OCR (det + angle cls + rec) through rapidocr-onnxruntime, whose wheel ships the ONNX models
(the package has no download code; nothing is fetched). OCR is slow next to detection, so it runs
only on flyer detections (a crop each). Whole photos are read for small ads by the flyer reader
(vision/detect/flyers.py), which shares this module's engine and phone-number rule. Never on every
video frame.
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import supervision as sv

from vision.core.draw import crop_box
from vision.core.taxonomy import Taxonomy

CROP_SIDE = 640  # crops are enlarged (at most 4x) to this long side: PP-OCR wants text >= ~10 px
DETECT_SIDE = 960  # whole-photo text search at this long side

_SEPARATOR = r"[\s\-–—.·]?"
# (pattern, canonical form); applied in order, each match blanked so no digit counts twice
PHONE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\(\s*(0\d{2,3})\s*\)\s*-?\s*(\d{7,8})(?!\d)"), "{0}-{1}"),  # (0371)12345678
    (
        re.compile(rf"(?<!\d)([48]00){_SEPARATOR}(\d{{3}}){_SEPARATOR}(\d{{4}})(?!\d)"),
        "{0}-{1}-{2}",
    ),  # 400-123-4567
    (
        re.compile(rf"(?<!\d)(1[3-9]\d){_SEPARATOR}(\d{{4}}){_SEPARATOR}(\d{{4}})(?!\d)"),
        "{0}{1}{2}",
    ),  # mobile
    (re.compile(r"(?<!\d)(0[12]\d)[\s\-–—]+(\d{8})(?!\d)"), "{0}-{1}"),  # 010-, 02x- + 8 digits
    (re.compile(r"(?<!\d)(0[3-9]\d{2})[\s\-–—]+(\d{7,8})(?!\d)"), "{0}-{1}"),  # 0371- + 7/8 digits
    # run together, the area code told by its length; local numbers never start with 0 or 1 then
    (re.compile(r"(?<!\d)(0[12]\d)([2-9]\d{7})(?!\d)"), "{0}-{1}"),
    (re.compile(r"(?<!\d)(0[3-9]\d{2})([2-9]\d{6,7})(?!\d)"), "{0}-{1}"),
)


def extract_phones(text: str) -> list[str]:
    """Phone numbers in OCR text, canonical and in reading order, each once.

    Mobiles as 11 digits (13812345678), landlines as area-number (0371-12345678), service
    numbers as 400-123-4567. Full-width digits and brackets are read as ASCII.
    """
    plain = unicodedata.normalize("NFKC", text)
    found: list[tuple[int, str]] = []
    for pattern, form in PHONE_PATTERNS:
        for match in pattern.finditer(plain):
            found.append((match.start(), form.format(*match.groups())))
        plain = pattern.sub(lambda m: " " * len(m.group(0)), plain)
    ordered = [number for _, number in sorted(found)]
    return list(dict.fromkeys(ordered))


@dataclass(frozen=True)
class OcrReading:
    text: str  # the lines read, top to bottom, joined by newlines
    phones: tuple[str, ...]
    confidence: float  # mean line score, 0 when nothing was read
    seconds: float  # OCR time of this crop

    def as_evidence(self) -> dict[str, Any]:
        """What a flyer's evidence record keeps (serve.cases.orm Evidence.extra)."""
        return {
            "ocr_text": self.text,
            "phones": list(self.phones),
            "ocr_confidence": round(self.confidence, 3),
            "ocr_seconds": round(self.seconds, 3),
        }


def class_ids(detections: sv.Detections) -> np.ndarray:
    """The class ids of detections, -1 where a source gave none."""
    if detections.class_id is None:
        return np.full(len(detections), -1)
    return np.asarray(detections.class_id)


def ocr_engine(threads: int = 1) -> Any:
    """PP-OCR (det + angle cls + rec) on ONNX Runtime, photos searched at DETECT_SIDE at most.

    Its ONNX sessions load in about a second: build one per reader, not per image.
    """
    from rapidocr_onnxruntime import RapidOCR  # imported here: scanning without OCR stays light

    return RapidOCR(
        det_limit_type="max",
        det_limit_side_len=DETECT_SIDE,
        intra_op_num_threads=threads,
        inter_op_num_threads=1,
    )


class FlyerReader:
    """PP-OCR for flyer crops; the ONNX sessions load once (about a second)."""

    def __init__(self, threads: int = 1):
        # crops are enlarged to CROP_SIDE <= DETECT_SIDE, so one limit serves crops and photos
        self.engine = ocr_engine(threads)

    def read(self, crop: np.ndarray) -> OcrReading:
        """Text and phone numbers of one flyer crop (BGR)."""
        started = time.perf_counter()
        scale = min(4.0, CROP_SIDE / max(1, max(crop.shape[:2])))
        if scale > 1:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        lines, _ = self.engine(crop)
        texts = [str(line[1]) for line in lines or []]
        scores = [float(line[2]) for line in lines or []]
        text = "\n".join(texts)
        return OcrReading(
            text,
            tuple(extract_phones(text)),
            float(np.mean(scores)) if scores else 0.0,
            time.perf_counter() - started,
        )

    def read_flyers(self, image: np.ndarray, detections: sv.Detections, taxonomy: Taxonomy) -> sv.Detections:
        """OCR every flyer detection; the readings go into data["ocr"] (None on other classes)."""
        flyer = taxonomy.names.index("flyer")
        readings: list[OcrReading | None] = [
            self.read(crop_box(image, box)) if class_id == flyer else None
            for box, class_id in zip(detections.xyxy, class_ids(detections), strict=True)
        ]
        detections.data["ocr"] = np.array(readings, dtype=object)
        return detections
