"""How well the flyer reader (vision/detect/flyers.py) does on the issue's targets
(`streetorder bench flyers`): recall and numbers read on a synthetic flyer set's val split, and
false small ads per photo on real photos without flyers (shop signs, window posters, plates,
liveries), with the current detector alongside as the scan runs them together."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from vision.core.detector import Detector
from vision.core.files import read_regular_file
from vision.core.imageio import PHOTO_SUFFIXES, decode_photo
from vision.detect.flyers import FlyerFinder, Reading


def read_as_scan(
    finder: FlyerFinder, data: bytes, size: tuple[int, int], detections: sv.Detections | None
) -> Reading:
    """The photo (its file's bytes, `size` its width and height) read as a scan in the finder's mode
    reads it: whole (`all`, or without a detector), around the detector's proposals (`detector`: no
    proposal, nothing read), or not at all (`off`); from the scan's own reduced decode (read_side),
    so a 12 MP photo is read at the resolution the scan gives it, not in full."""
    full = detections is None or finder.rules.scan == "all"
    reading = finder.read_scanned(
        detections if detections is not None else sv.Detections.empty(),
        size,
        lambda side: decode_photo(data, reduce_to=side).image,
        full=full,
    )
    return reading if reading is not None else Reading((), 0, 0.0)


def _centre_in(box: Sequence[float], xyxy: Sequence[float]) -> bool:
    cx, cy = (xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _found(box: Sequence[float], xyxy: Sequence[float]) -> bool:
    """One box is the flyer when either's centre lies in the other."""
    return _centre_in(box, xyxy) or _centre_in(xyxy, box)


def synthetic(
    finder: FlyerFinder,
    detector: Detector | None,
    dataset: Path,
    limit: int,
    threshold: float,
    min_height: int = 60,
    read_height: int = 120,
) -> dict[str, Any]:
    """Whole photos of a synthetic set's val split: flyers >= min_height px tall found by the reader
    alone (a small ad on them), by the detector alone and by both combined at `threshold` (what
    the scan files); flyers >= read_height px tall whose printed numbers were all read."""
    lines = (dataset / "flyers.jsonl").read_text(encoding="utf-8").splitlines()
    records = [r for r in map(json.loads, lines) if r["image"].startswith("images/val/")][: limit or None]
    found = {"reader": 0} if detector is None else {"reader": 0, "detector": 0, "combined": 0}
    tall = read = readable = false = 0
    cpu = []
    for record in records:
        data = read_regular_file(dataset / record["image"])
        photo = decode_photo(data, source=record["image"])
        detections = detector(photo.image) if detector is not None else None
        started = time.process_time()
        reading = read_as_scan(finder, data, (photo.width, photo.height), detections)
        cpu.append(time.process_time() - started)
        ads = reading.small_ads
        boxes: dict[str, list[Sequence[float]]] = {"reader": [n.xyxy for n in ads]}
        if detections is not None:
            combined = finder.combine(detections, reading)
            for name, found_by in (("detector", detections), ("combined", combined)):
                chosen = (found_by.class_id == finder.flyer) & (np.asarray(found_by.confidence) >= threshold)
                boxes[name] = list(found_by.xyxy[chosen])
        for flyer in record["flyers"]:
            box = flyer["xyxy"]
            height = box[3] - box[1]
            if height >= min_height:
                tall += 1
                for name, candidates in boxes.items():
                    found[name] += any(_found(box, xyxy) for xyxy in candidates)
            if height >= read_height:
                readable += 1
                numbers = {p for n in ads if _centre_in(box, n.xyxy) for p in n.phones}
                read += set(flyer["text"]["phones"]) <= numbers
        false += sum(not any(_found(f["xyxy"], n.xyxy) for f in record["flyers"]) for n in ads)
    return {
        "photos": len(records),
        f"flyers_ge_{min_height}px": tall,
        "recall": {name: _share(hits, tall) for name, hits in found.items()},
        f"phone_read_flyers_ge_{read_height}px": _share(read, readable),
        "reader_small_ads_off_any_flyer": false,
        "reader_cpu_ms_per_photo": _ms(cpu),
    }


def _share(hits: int, count: int) -> str:
    return f"{hits}/{count}" + (f" = {hits / count:.2f}" if count else "")


def negatives(
    finder: FlyerFinder, detector: Detector | None, folder: Path, limit: int, threshold: float
) -> dict[str, Any]:
    """Photos without posted flyers: small ads the reader alone finds per photo, and flyer findings
    per photo at `threshold` once combined with the detector (what the scan would file)."""
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    step = max(1, len(photos) // limit) if limit else 1
    sample = photos[::step][:limit] if limit else photos
    reader_ads = filed = detector_alone = 0
    seconds, examples = [], []
    for path in sample:
        data = read_regular_file(path)
        photo = decode_photo(data, source=str(path))
        detections = detector(photo.image) if detector is not None else None
        started = time.process_time()
        reading = read_as_scan(finder, data, (photo.width, photo.height), detections)
        seconds.append(time.process_time() - started)
        reader_ads += len(reading.small_ads)
        for notice in reading.small_ads:
            examples.append(f"{path.name}: {' / '.join(notice.lines)[:60]} ({'; '.join(notice.reasons)})")
        if detections is not None:
            combined = finder.combine(detections, reading)
            flyer = finder.flyer
            filed += int(
                np.sum((combined.class_id == flyer) & (np.asarray(combined.confidence) >= threshold))
            )
            if detections.class_id is not None and detections.confidence is not None:
                detector_alone += int(
                    np.sum((detections.class_id == flyer) & (detections.confidence >= threshold))
                )
    count = max(1, len(sample))
    return {
        "photos": len(sample),
        "of": len(photos),
        "reader_small_ads_per_photo": round(reader_ads / count, 4),
        "flyer_findings_per_photo_combined": round(filed / count, 4),
        "flyer_findings_per_photo_detector_alone": round(detector_alone / count, 4),
        "reader_cpu_ms_per_photo": _ms(seconds),
        "reader_small_ads": examples[:10],
    }


def _ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    return {
        "mean": round(1000 * float(np.mean(seconds)), 1),
        "p50": round(1000 * float(np.median(seconds)), 1),
        "p90": round(1000 * float(np.percentile(seconds, 90)), 1),
    }


def bench_flyers(
    finder: FlyerFinder,
    detector: Detector | None,
    synthetic_set: Path | None,
    negative_folders: Sequence[Path],
    limit: int,
    threshold: float,
    heights: tuple[int, int] = (60, 120),
) -> dict[str, Any]:
    """`heights`: flyers at least this tall (px) count for recall, and for numbers read."""
    started = time.perf_counter()
    result: dict[str, Any] = {"mode": finder.rules.scan, "find_side": finder.rules.find_side, "limit": limit}
    if synthetic_set is not None:
        result["synthetic"] = synthetic(finder, detector, synthetic_set, limit, threshold, *heights)
    result["negatives"] = {
        str(folder): negatives(finder, detector, folder, limit, threshold) for folder in negative_folders
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result
