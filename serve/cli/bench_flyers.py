"""`streetorder bench flyers`: the flyer reader's targets (issue 26): recall and phone numbers read on
a synthetic flyer set's val split, false small ads per photo on real val photos without flyers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serve.cases.settings import ROOT, get_settings

SHARED = ROOT.parent / "shared" / "datasets"
NEGATIVES = ("garbage-cn", "facades-spb", "traffic-cams", "vehicles-in")


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="streetorder bench flyers", description=__doc__.splitlines()[0])
    p.add_argument("--synthetic", type=Path, help="a synthetic flyer set (streetorder data synth-flyers)")
    p.add_argument(
        "--negatives",
        type=Path,
        nargs="*",
        default=[SHARED / name / "images" / "val" for name in NEGATIVES],
        help="folders of photos without posted flyers (default: the four real val sets)",
    )
    p.add_argument("--limit", type=int, default=0, help="photos per set, spread evenly (0: all)")
    p.add_argument("--no-detector", action="store_true", help="the reader alone (no livery/sign boxes)")
    args = p.parse_args(argv)
    from vision.core.taxonomy import load_taxonomy
    from vision.data.flyer_bench import bench_flyers
    from vision.detect.backends import load_detector
    from vision.detect.flyers import FlyerFinder

    missing = [
        str(f) for f in [*args.negatives, *([args.synthetic] if args.synthetic else [])] if not f.is_dir()
    ]
    if missing:
        print(f"streetorder bench flyers: not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    detector = None if args.no_detector else load_detector(get_settings().model)
    threshold = load_taxonomy().classes[load_taxonomy().names.index("flyer")].min_confidence
    result = bench_flyers(FlyerFinder(), detector, args.synthetic, args.negatives, args.limit, threshold)
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0
