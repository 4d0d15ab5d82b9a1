"""`streetorder ocr`: read text and phone numbers on flyers (vision.detect.ocr)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from serve.cases.settings import get_settings
from serve.cli.args import positive_int
from vision.core.draw import crop_box
from vision.core.imageio import ImageError, read_photo
from vision.data.ocr_bench import bench, rendered_samples, set_samples
from vision.detect.flyers import FlyerFinder, load_flyer_rules
from vision.detect.ocr import FlyerReader


def box(text: str) -> list[float]:
    """x1,y1,x2,y2: four finite pixel coordinates, x2 right of x1 and y2 below y1 (a reversed or
    empty box read nothing and said so only as an empty result; letters were a traceback)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected four numbers x1,y1,x2,y2, got {text!r}")
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        raise argparse.ArgumentTypeError(f"x2 must exceed x1 and y2 exceed y1, got {text!r}")
    return values


def heights(text: str) -> list[int]:
    """Flyer heights in pixels, e.g. 48,96,192 (each 1 or more)."""
    return [positive_int(part) for part in text.split(",")]


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder ocr", description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, nargs="*", help="images to read (whole image, or --box)")
    parser.add_argument("--box", type=box, help="x1,y1,x2,y2 in pixels: read only this flyer box")
    parser.add_argument(
        "--find",
        action="store_true",
        help="read the whole photo for small ads (the flyer reader, docs/flyers.md)",
    )
    parser.add_argument(
        "--bench", type=Path, help="a synthetic flyer set: print ms per crop and numbers read"
    )
    parser.add_argument(
        "--bench-rendered",
        type=heights,
        metavar="HEIGHTS",
        help="e.g. 48,96,192: OCR flyers rendered face-on at these heights in pixels",
    )
    parser.add_argument("--limit", type=positive_int, default=200, help="--bench: at most this many crops")
    parser.add_argument(
        "--per-height", type=positive_int, default=20, help="--bench-rendered: flyers per height"
    )
    parser.add_argument("--threads", type=positive_int, default=1, help="ONNX Runtime threads")
    args = parser.parse_args(argv)
    if args.bench or args.bench_rendered:
        samples = (
            set_samples(args.bench, args.limit)
            if args.bench
            else rendered_samples(args.bench_rendered, args.per_height)
        )
        print(json.dumps(bench(samples, args.threads), ensure_ascii=False))
        return 0
    if not args.images:
        parser.error("give images, --bench DIR or --bench-rendered HEIGHTS")
    reader = FlyerReader(threads=args.threads)
    settings = get_settings()
    rules = load_flyer_rules(settings.configs_dir / "flyers.yaml")
    finder = FlyerFinder(rules, settings.taxonomy(), engine=reader.engine)
    for path in args.images:
        try:
            image = read_photo(path).image
        except ImageError as err:
            print(f"streetorder ocr: {err}", file=sys.stderr)
            return 1
        if args.find:
            result: Any = [notice.as_evidence() for notice in finder.read(image).notices]
        else:
            crop = crop_box(image, args.box) if args.box is not None else image
            result = asdict(reader.read(crop))
        print(json.dumps({"image": str(path), "result": result}, ensure_ascii=False))
    return 0
