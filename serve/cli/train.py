"""`streetorder train`: train a detector on a mix of partially labelled datasets (vision.modelops.train)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serve.cases.settings import get_settings
from serve.cli.args import count, positive_float, positive_int, share
from vision.core.taxonomy import TaxonomyError
from vision.detect.registry import ModelError
from vision.modelops.train import (
    average_checkpoints,
    train,
)


def cli(argv: list[str]) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="streetorder train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=settings.configs_dir / "datasets" / "street-mix.yaml",
        help="a mix file (configs/datasets/*.yaml) or any ultralytics data.yaml",
    )
    parser.add_argument(
        "--model",
        default="yolo11n.yaml",
        help="architecture yaml to train from scratch, or a .pt to start from",
    )
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument(
        "--hours",
        type=positive_float,
        default=None,
        help="train for this long instead of --epochs (the schedule fits the time)",
    )
    parser.add_argument("--imgsz", type=positive_int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, or a CUDA device index such as 0")
    parser.add_argument("--workers", type=count, default=2)
    parser.add_argument("--project", type=Path, default=Path("runs"))
    parser.add_argument("--name", default="train")
    parser.add_argument("--cache-dir", type=Path, default=settings.cache_dir, help="built mixes (cache_dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lr0",
        type=positive_float,
        default=None,
        help="fine-tune a trained --model: AdamW at this learning rate, no warm-up "
        "(default: ultralytics' choice, with a warm-up meant for training from scratch)",
    )
    parser.add_argument(
        "--mosaic",
        type=share,
        default=1.0,
        help="share of training images shown as 4-photo mosaics; 0 trains on photos at their own scale "
        "(the no-mosaic epochs ultralytics keeps for the end of long runs)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run PROJECT/NAME from its last.pt (or --model PATH/last.pt)",
    )
    parser.add_argument(
        "--average",
        nargs="+",
        type=Path,
        metavar="CHECKPOINT",
        help="no training: write the mean of these checkpoints' weights as PROJECT/NAME/weights/last.pt",
    )
    args = parser.parse_args(argv)
    if args.average:
        try:
            run_dir = average_checkpoints(args.average, args.project / args.name)
        except ModelError as err:
            print(f"train: {err}", file=sys.stderr)
            return 1
        print(f"averaged: {run_dir / 'weights' / 'last.pt'} (card: {run_dir / 'weights' / 'card.yaml'})")
        return 0
    try:
        run_dir = train(
            data=args.data,
            taxonomy=settings.taxonomy(),
            model=args.model,
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            device=args.device,
            hours=args.hours,
            project=args.project,
            name=args.name,
            cache_dir=args.cache_dir,
            resume=args.resume,
            workers=args.workers,
            seed=args.seed,
            lr0=args.lr0,
            mosaic=args.mosaic,
        )
    except (ModelError, TaxonomyError) as err:
        print(f"train: {err}", file=sys.stderr)
        return 1
    print(f"trained: {run_dir / 'weights' / 'best.pt'} (card: {run_dir / 'weights' / 'card.yaml'})")
    return 0
