"""How well OCR reads flyers: the synthetic set's flyers and flyers rendered face-on at known heights,
read by vision.detect.ocr's FlyerReader (`streetorder ocr --bench`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.core.draw import crop_box
from vision.core.imageio import read_photo
from vision.data.flyers.fonts import find_cjk_fonts
from vision.data.flyers.layout import STYLES, render_layout
from vision.data.flyers.text import flyer_text
from vision.data.flyers.wear import age
from vision.detect.ocr import FlyerReader


@dataclass(frozen=True)
class Sample:
    """A flyer crop whose printed numbers are known."""

    crop: np.ndarray
    phones: tuple[str, ...]
    height: int  # the flyer's height in the photo, pixels
    style: str


def set_samples(dataset: Path, limit: int) -> Iterator[Sample]:
    """The flyers of a synthetic set (its flyers.jsonl, from vision/data/flyers/), cropped from its photos."""
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
