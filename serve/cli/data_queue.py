"""`streetorder data queue`: pick images worth labelling from the case database (serve.cases.labelling)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from serve.cases.labelling import build_queue
from serve.cases.settings import get_settings
from serve.cli.args import positive_int
from vision.data.activelearning import (
    DOCUMENT_ROOT_HELP,
    known_images,
)


def cli(argv: list[str]) -> int:
    from serve.cases.db import open_database
    from vision.modelops.promote import CONFIG as PROMOTION
    from vision.modelops.promote import holdout_refusals

    parser = argparse.ArgumentParser(prog="streetorder data queue", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--from-db", required=True, help="SQLAlchemy URL of the case database (scans, uploads, cameras)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for tasks.json, cvat-yolo.zip, images/"
    )
    parser.add_argument("--limit", type=positive_int, default=200, help="at most this many images")
    parser.add_argument(
        "--base", type=Path, default=Path.cwd(), help="folder relative photo/evidence paths start from"
    )
    parser.add_argument("--document-root", type=Path, help=DOCUMENT_ROOT_HELP)
    parser.add_argument(
        "--skip-dataset", action="append", default=[], help="skip images already in datasets/NAME"
    )
    parser.add_argument("--datasets-dir", type=Path, help="default: the data_dir setting")
    args = parser.parse_args(argv)
    settings = get_settings()
    taxonomy = settings.taxonomy()
    out = args.out.resolve()
    document_root = (args.document_root or out).resolve()
    if not out.is_relative_to(document_root):
        print(f"data queue: --out {out} must be inside --document-root {document_root}", file=sys.stderr)
        return 2
    skip = holdout_refusals(settings.configs_dir / PROMOTION, taxonomy, settings.cache_dir)
    skip.update(known_images(args.skip_dataset, args.datasets_dir or settings.data_dir))
    sessions = open_database(args.from_db, create=False)
    left_out: dict[str, str] = {}
    queued = build_queue(
        sessions,
        out,
        limit=args.limit,
        base=args.base,
        document_root=document_root,
        skip=skip,
        taxonomy=taxonomy,
        left_out=left_out,
    )
    reasons = Counter(item.reasons[0] for item in queued)
    summary = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common()) or "nothing to label"
    print(f"queued {len(queued)} image(s): {summary}; {out / 'tasks.json'}, {out / 'cvat-yolo.zip'}")
    if left_out:
        print(left_out_line(left_out))
    earlier = sorted({p.name for p in (out / "images").iterdir()} - {item.path.name for item in queued})
    if earlier:  # kept: tasks Label Studio took from an earlier queue still name them
        print(
            f"note: {out / 'images'} also holds {len(earlier)} image(s) of an earlier queue: a CVAT task "
            "takes the images of cvat-yolo.zip (or give each queue its own --out)"
        )
    return 0


def left_out_line(left_out: dict[str, str]) -> str:
    """The images the queue passed over, by kind: a scan of validation photos queued "nothing to
    label" without saying they were the frozen holdout's."""
    holdout = sum("frozen holdout" in why for why in left_out.values())
    kinds = [
        (holdout, "of the frozen holdout or copies of its photos (never trained on)"),
        (len(left_out) - holdout, "already in a --skip-dataset dataset or copies of its images"),
    ]
    return "left out: " + ", ".join(f"{count} {kind}" for count, kind in kinds if count)
