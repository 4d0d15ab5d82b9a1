"""`streetorder data paste`: objects of one mix source pasted into other sources' photos where
reviews confirmed their class absent (vision.data.paste)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from serve.cases.settings import get_settings
from serve.cli.args import positive_int
from vision.core.taxonomy import TaxonomyError


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder data paste", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mix", type=Path, required=True, help="the mix file whose sources and reviews to use"
    )
    parser.add_argument("--from", dest="donor", required=True, help="the mix source to cut objects from")
    parser.add_argument(
        "--classes", required=True, help="comma-separated classes to paste (the donor labels them)"
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--per-photo", type=positive_int, default=2, help="at most this many objects a photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    args = parser.parse_args(argv)
    from vision.data.paste import paste_objects

    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    try:
        summary = paste_objects(
            args.mix,
            args.donor,
            classes,
            args.out,
            get_settings().taxonomy(),
            per_photo=args.per_photo,
            seed=args.seed,
            overwrite=args.overwrite,
        )
    except (ValueError, TaxonomyError, FileExistsError) as err:
        print(f"streetorder data paste: {err}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(summary), ensure_ascii=False))
    print(f"contact sheet: {Path(summary.out) / 'sheets'}")
    return 0
