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

from vision.core.detector import Detector
from vision.core.imageio import read_photo
from vision.detect.flyers import FlyerFinder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _centre_in(box: Sequence[float], xyxy: Sequence[float]) -> bool:
    cx, cy = (xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def synthetic(
    finder: FlyerFinder, dataset: Path, limit: int, min_height: int = 60, read_height: int = 120
) -> dict[str, Any]:
    """Reader alone, whole photos: flyers >= min_height px tall found (a small ad centred on them),
    and flyers >= read_height px tall whose printed numbers were all read."""
    records = [
        json.loads(line) for line in (dataset / "flyers.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    records = [r for r in records if r["image"].startswith("images/val/")][:limit]
    found = tall = read = readable = false = 0
    seconds = []
    for record in records:
        image = read_photo(dataset / record["image"]).image
        reading = finder.read(image)
        seconds.append(reading.seconds)
        ads = reading.small_ads
        for flyer in record["flyers"]:
            box = flyer["xyxy"]
            height = box[3] - box[1]
            on_it = [n for n in ads if _centre_in(box, n.xyxy)]
            if height >= min_height:
                tall += 1
                found += bool(on_it)
            if height >= read_height:
                readable += 1
                numbers = {p for n in on_it for p in n.phones}
                read += set(flyer["text"]["phones"]) <= numbers
        false += sum(not any(_centre_in(f["xyxy"], n.xyxy) for f in record["flyers"]) for n in ads)
    return {
        "photos": len(records),
        f"recall_flyers_ge_{min_height}px": f"{found}/{tall}" + (f" = {found / tall:.2f}" if tall else ""),
        f"phone_read_flyers_ge_{read_height}px": f"{read}/{readable}"
        + (f" = {read / readable:.2f}" if readable else ""),
        "small_ads_off_any_flyer": false,
        "ms_per_photo": _ms(seconds),
    }


def negatives(
    finder: FlyerFinder, detector: Detector | None, folder: Path, limit: int, threshold: float
) -> dict[str, Any]:
    """Photos without posted flyers: small ads the reader alone finds per photo, and flyer findings
    per photo at `threshold` once combined with the detector (what the scan would file)."""
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    step = max(1, len(photos) // limit) if limit else 1
    sample = photos[::step][:limit] if limit else photos
    reader_ads = filed = detector_alone = 0
    seconds, examples = [], []
    for path in sample:
        image = read_photo(path).image
        detections = detector(image) if detector is not None else None
        reading = finder.read(image, detections)
        seconds.append(reading.seconds)
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
        "ms_per_photo": _ms(seconds),
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
) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"find_side": finder.rules.find_side, "limit": limit}
    if synthetic_set is not None:
        result["synthetic"] = synthetic(finder, synthetic_set, limit)
    result["negatives"] = {
        str(folder): negatives(finder, detector, folder, limit, threshold) for folder in negative_folders
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result
