"""`streetorder data synth-flyers`: paste rendered flyers onto real street photos (vision.data.flyers)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from serve.cases.settings import get_settings
from serve.cli.args import positive_int, share
from vision.data.flyers.fonts import FontError
from vision.data.flyers.synthesize import synthesize


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="streetorder data synth-flyers", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--backgrounds",
        type=Path,
        nargs="+",
        required=True,
        help="folders of background photos (labels found via their dataset's data.yaml)",
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--count", type=positive_int, required=True, help="number of images to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-share", type=share, default=0.1, help="share of backgrounds kept for val")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    parser.add_argument(
        "--upscale",
        type=positive_int,
        default=1,
        help="the same flyers on backgrounds this many times larger (6: a 640 px set at 12 MP)",
    )
    args = parser.parse_args(argv)
    try:
        summary = synthesize(
            args.backgrounds,
            args.out,
            args.count,
            get_settings().taxonomy(),
            args.seed,
            args.val_share,
            overwrite=args.overwrite,
            upscale=args.upscale,
        )
    except (FileNotFoundError, ValueError) as err:  # what the command line named does not fit
        print(f"streetorder data synth-flyers: {err}", file=sys.stderr)
        return 2
    except (FontError, FileExistsError) as err:  # no CJK font; --out exists without --overwrite
        print(f"streetorder data synth-flyers: {err}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(summary), ensure_ascii=False))
    print(f"contact sheet: {Path(summary.out) / 'contact_sheet.png'}")
    return 0
