"""`streetorder bench flyers`: the flyer reader's targets (issue 26): recall and phone numbers read on
a synthetic flyer set's val split, false small ads per photo on real val photos without flyers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serve.cases.settings import get_settings
from serve.cli.args import count, positive_int

NEGATIVES = ("garbage-cn", "facades-spb", "traffic-cams", "vehicles-in")


def cli(argv: list[str]) -> int:
    settings = get_settings()
    shared = settings.shared_datasets_dir
    p = argparse.ArgumentParser(prog="streetorder bench flyers", description=__doc__.splitlines()[0])
    p.add_argument("--synthetic", type=Path, help="a synthetic flyer set (streetorder data synth-flyers)")
    p.add_argument(
        "--negatives",
        type=Path,
        nargs="*",
        default=[shared / name / "images" / "val" for name in NEGATIVES],
        help="folders of photos without posted flyers (default: the four real val sets)",
    )
    p.add_argument("--limit", type=count, default=0, help="photos per set, spread evenly (0: all)")
    p.add_argument("--no-detector", action="store_true", help="the reader alone (no livery/sign boxes)")
    p.add_argument(
        "--flyers",
        choices=["all", "detector"],
        default="all",
        help="read whole photos (all, default) or only around the detector's proposals (the default scan)",
    )
    p.add_argument(
        "--min-height",
        type=positive_int,
        default=60,
        help="flyers this tall (px) or taller count for recall (the issue's 60; 360 at --upscale 6)",
    )
    p.add_argument(
        "--read-height",
        type=positive_int,
        default=120,
        help="flyers at least this tall count for numbers read",
    )
    args = p.parse_args(argv)
    from vision.data.flyer_bench import bench_flyers
    from vision.detect.backends import load_detector
    from vision.detect.flyers import FlyerFinder, ScanMode, detection_floor, load_flyer_rules

    missing = [
        str(f) for f in [*args.negatives, *([args.synthetic] if args.synthetic else [])] if not f.is_dir()
    ]
    if missing:
        print(f"streetorder bench flyers: not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    taxonomy = settings.taxonomy()
    mode: ScanMode = "all" if args.no_detector else args.flyers
    finder = FlyerFinder(load_flyer_rules(settings.configs_dir / "flyers.yaml").with_scan(mode), taxonomy)
    detector = (
        None
        if args.no_detector
        else load_detector(
            settings.model,
            models_dir=settings.models_dir,
            taxonomy=taxonomy,
            confidence=detection_floor(finder.rules),
        )
    )
    threshold = taxonomy.classes[taxonomy.names.index("flyer")].min_confidence
    result = bench_flyers(
        finder,
        detector,
        args.synthetic,
        args.negatives,
        args.limit,
        threshold,
        heights=(args.min_height, args.read_height),
    )
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0
