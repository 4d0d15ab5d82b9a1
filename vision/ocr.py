"""OCR evidence for posted flyers: the text and the phone numbers enforcement calls.

PP-OCR (det + angle cls + rec) through rapidocr-onnxruntime, whose wheel ships the ONNX models
(the package has no download code; nothing is fetched). OCR is slow next to detection, so it runs
only on flyer detections (a crop each), and, when asked for, once per patrol photo to find flyers
the detector missed: text with a phone number on a wall-like surface becomes a low-confidence
flyer candidate marked `source = "ocr"`. Never on every video frame.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

from vision.draw import crop_box
from vision.imageio import ImageError, read_photo
from vision.surfaces import surface_mask
from vision.taxonomy import Taxonomy, load_taxonomy

# Below the flyer class's min_confidence (configs/taxonomy.yaml), so an OCR candidate never files
# a case by itself: it waits for a person or the detector to confirm it.
OCR_CANDIDATE_CONFIDENCE = 0.3
CROP_SIDE = 640  # crops are enlarged (at most 4x) to this long side: PP-OCR wants text >= ~10 px
DETECT_SIDE = 960  # whole-photo text search at this long side
# Classes whose text is not a flyer's: shop signs carry phone numbers legally, posters are their own class.
NOT_FLYER_TEXT = ("signboard", "poster", "flyer")

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
        """What a flyer's evidence record keeps (serve.orm Evidence.extra)."""
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


class FlyerReader:
    """PP-OCR for flyer crops; the ONNX sessions load once (about a second)."""

    def __init__(self, threads: int = 1):
        from rapidocr_onnxruntime import RapidOCR  # imported here: scanning without OCR stays light

        # crops are enlarged to CROP_SIDE <= DETECT_SIDE, so one limit serves crops and photos
        self.engine = RapidOCR(
            det_limit_type="max",
            det_limit_side_len=DETECT_SIDE,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
        )

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

    def read_flyers(
        self, image: np.ndarray, detections: sv.Detections, taxonomy: Taxonomy | None = None
    ) -> sv.Detections:
        """OCR every flyer detection; the readings go into data["ocr"] (None on other classes)."""
        taxonomy = taxonomy or load_taxonomy()
        flyer = taxonomy.names.index("flyer")
        readings: list[OcrReading | None] = [
            self.read(crop_box(image, box)) if class_id == flyer else None
            for box, class_id in zip(detections.xyxy, class_ids(detections), strict=True)
        ]
        detections.data["ocr"] = np.array(readings, dtype=object)
        return detections

    def find_missed(
        self, image: np.ndarray, detections: sv.Detections, taxonomy: Taxonomy | None = None
    ) -> sv.Detections:
        """Flyer candidates from text the detector did not cover: a phone number on a wall-like surface.

        Text inside a detected signboard, poster or flyer is skipped (shop signs list phone
        numbers legally; flyers already found are read by read_flyers). Each candidate is the
        text line's box grown by half a line, class flyer, confidence OCR_CANDIDATE_CONFIDENCE x
        the OCR score, data["source"] = "ocr", with its reading in data["ocr"].
        """
        taxonomy = taxonomy or load_taxonomy()
        flyer = taxonomy.names.index("flyer")
        excluded = {taxonomy.names.index(name) for name in NOT_FLYER_TEXT}
        covered = [
            box
            for box, class_id in zip(detections.xyxy, class_ids(detections), strict=True)
            if class_id in excluded
        ]
        started = time.perf_counter()
        lines, _ = self.engine(image)
        wall = surface_mask(image)
        boxes, scores, readings = [], [], []
        for points, text, score in lines or []:
            quad = np.asarray(points, dtype=float)
            x1, y1 = quad.min(axis=0)
            x2, y2 = quad.max(axis=0)
            phones = extract_phones(str(text))
            cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
            if not phones or not wall[min(cy, wall.shape[0] - 1), min(cx, wall.shape[1] - 1)]:
                continue
            if any(bx1 <= cx <= bx2 and by1 <= cy <= by2 for bx1, by1, bx2, by2 in covered):
                continue
            grow = (y2 - y1) / 2
            boxes.append(
                [
                    max(0, x1 - grow),
                    max(0, y1 - grow),
                    min(image.shape[1], x2 + grow),
                    min(image.shape[0], y2 + grow),
                ]
            )
            scores.append(OCR_CANDIDATE_CONFIDENCE * float(score))
            readings.append(OcrReading(str(text), tuple(phones), float(score), 0.0))
        seconds = time.perf_counter() - started
        readings = [OcrReading(r.text, r.phones, r.confidence, seconds) for r in readings]
        if not boxes:
            return sv.Detections.empty()
        return sv.Detections(
            xyxy=np.array(boxes, dtype=np.float32),
            confidence=np.array(scores, dtype=np.float32),
            class_id=np.full(len(boxes), flyer, dtype=int),
            data={"source": np.array(["ocr"] * len(boxes)), "ocr": np.array(readings, dtype=object)},
        )


@dataclass(frozen=True)
class Sample:
    """A flyer crop whose printed numbers are known."""

    crop: np.ndarray
    phones: tuple[str, ...]
    height: int  # the flyer's height in the photo, pixels
    style: str


def set_samples(dataset: Path, limit: int) -> Iterator[Sample]:
    """The flyers of a synthetic set (vision/flyers.py writes flyers.jsonl), cropped from its photos."""
    lines = (dataset / "flyers.jsonl").read_text(encoding="utf-8").splitlines()
    count = 0
    for record in map(json.loads, lines):
        image = read_photo(dataset / record["image"]).image
        for flyer in record["flyers"]:
            if count == limit:
                return
            count += 1
            height = flyer["xyxy"][3] - flyer["xyxy"][1]
            yield Sample(
                crop_box(image, flyer["xyxy"]), tuple(flyer["text"]["phones"]), height, flyer["style"]
            )


def rendered_samples(heights: Sequence[int], per_height: int, seed: int = 0) -> Iterator[Sample]:
    """Flyers rendered face-on at a given height on a grey wall, slightly blurred and JPEG-compressed.

    The upper bound of what OCR can read at that size; pasted flyers add perspective and lighting.
    """
    from vision.flyers import STYLES, age, find_cjk_fonts, flyer_text, render_layout

    fonts = find_cjk_fonts()
    for height in heights:
        for index in range(per_height):
            rng = np.random.default_rng([seed, height, index])
            style = STYLES[index % len(STYLES)]
            text = flyer_text(rng)
            flyer = age(render_layout(text, style, float(rng.uniform(*style.aspect)), rng, fonts), style, rng)
            scale = height / flyer.shape[0]
            small = cv2.resize(flyer, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            wall = np.full((small.shape[0] + 20, small.shape[1] + 20, 3), 150.0, np.float32)
            alpha = small[..., 3:]
            wall[10:-10, 10:-10] = wall[10:-10, 10:-10] * (1 - alpha) + 255 * small[..., 2::-1] * alpha
            photo = cv2.GaussianBlur(wall, (0, 0), 0.7).astype(np.uint8)
            _, encoded = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 80])
            yield Sample(np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)), text.phones, height, style.name)


def bench(samples: Iterable[Sample], threads: int) -> dict[str, Any]:
    """OCR every sample: ms per crop, and numbers read exactly, by flyer height and by style."""
    reader = FlyerReader(threads=threads)
    seconds: list[float] = []
    bins = (30, 60, 120, 240)
    by_height: dict[str, list[int]] = {f"<{b}px": [0, 0] for b in bins} | {f">={bins[-1]}px": [0, 0]}
    by_style: dict[str, list[int]] = {}
    for sample in samples:
        reading = reader.read(sample.crop)
        seconds.append(reading.seconds)
        hit = int(set(sample.phones) <= set(reading.phones))
        upper = next((b for b in bins if sample.height < b), None)
        key = f"<{upper}px" if upper else f">={bins[-1]}px"
        for table, name in ((by_height, key), (by_style, sample.style)):
            table.setdefault(name, [0, 0])
            table[name][0] += hit
            table[name][1] += 1
    if not seconds:
        return {"crops": 0}
    hits = sum(v[0] for v in by_style.values())
    return {
        "crops": len(seconds),
        "threads": threads,
        "ms_per_crop": {
            "mean": round(1000 * float(np.mean(seconds)), 1),
            "p50": round(1000 * float(np.median(seconds)), 1),
            "p90": round(1000 * float(np.percentile(seconds, 90)), 1),
        },
        "phones_read": f"{hits}/{len(seconds)}",
        "by_flyer_height": {k: f"{v[0]}/{v[1]}" for k, v in by_height.items() if v[1]},
        "by_style": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_style.items())},
    }


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder ocr", description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, nargs="*", help="images to read (whole image, or --box)")
    parser.add_argument("--box", help="x1,y1,x2,y2 in pixels: read only this flyer box")
    parser.add_argument("--find", action="store_true", help="search the whole photo for missed flyers")
    parser.add_argument(
        "--bench", type=Path, help="a synthetic flyer set: print ms per crop and numbers read"
    )
    parser.add_argument(
        "--bench-rendered",
        metavar="HEIGHTS",
        help="e.g. 48,96,192: OCR flyers rendered face-on at these heights in pixels",
    )
    parser.add_argument("--limit", type=int, default=200, help="--bench: at most this many crops")
    parser.add_argument("--per-height", type=int, default=20, help="--bench-rendered: flyers per height")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    args = parser.parse_args(argv)
    if args.bench or args.bench_rendered:
        samples = (
            set_samples(args.bench, args.limit)
            if args.bench
            else rendered_samples([int(h) for h in args.bench_rendered.split(",")], args.per_height)
        )
        print(json.dumps(bench(samples, args.threads), ensure_ascii=False))
        return 0
    if not args.images:
        parser.error("give images, --bench DIR or --bench-rendered HEIGHTS")
    reader = FlyerReader(threads=args.threads)
    for path in args.images:
        try:
            image = read_photo(path).image
        except ImageError as err:
            print(f"streetorder ocr: {err}", file=sys.stderr)
            return 2
        if args.find:
            found = reader.find_missed(image, sv.Detections.empty())
            result: Any = [
                {"xyxy": [round(float(v)) for v in box], "confidence": round(float(c), 3), "ocr": asdict(r)}
                for box, c, r in zip(
                    found.xyxy, np.asarray(found.confidence), found.data.get("ocr", []), strict=True
                )
            ]
        else:
            box = [float(v) for v in args.box.split(",")] if args.box else None
            if box is not None and len(box) != 4:
                parser.error(f"--box: expected x1,y1,x2,y2, got {args.box}")
            crop = crop_box(image, box) if box is not None else image
            result = asdict(reader.read(crop))
        print(json.dumps({"image": str(path), "result": result}, ensure_ascii=False))
    return 0
