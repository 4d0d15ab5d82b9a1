"""`streetorder ocr`: read text and phone numbers on flyers (vision.detect.ocr)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from serve.cases.settings import get_settings
from vision.core.draw import crop_box
from vision.core.imageio import ImageError, read_photo
from vision.data.ocr_bench import bench, rendered_samples, set_samples
from vision.detect.flyers import FlyerFinder, load_flyer_rules
from vision.detect.ocr import FlyerReader


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder ocr", description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, nargs="*", help="images to read (whole image, or --box)")
    parser.add_argument("--box", help="x1,y1,x2,y2 in pixels: read only this flyer box")
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
            box = [float(v) for v in args.box.split(",")] if args.box else None
            if box is not None and len(box) != 4:
                parser.error(f"--box: expected x1,y1,x2,y2, got {args.box}")
            crop = crop_box(image, box) if box is not None else image
            result = asdict(reader.read(crop))
        print(json.dumps({"image": str(path), "result": result}, ensure_ascii=False))
    return 0
