"""`streetorder evaluate`: per-class P, R, AP50, AP50-95 of a model on a data.yaml
(vision.modelops.evaluate), or with --unlabelled DIR a contact sheet of everything it finds on a
folder of unlabelled photos (vision.modelops.unlabelled)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serve.cases.settings import Settings, get_settings
from serve.cli.args import positive_int
from vision.core.taxonomy import TaxonomyError
from vision.data.reviews import ReviewError, confirmed_absent
from vision.detect.backends import BACKENDS, load_detector
from vision.detect.registry import ModelError, find_model, update_card
from vision.modelops.evaluate import (
    EVAL_CONFIDENCE,
    card_entry,
    evaluate,
    print_table,
)
from vision.modelops.unlabelled import look_over, write_look


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder evaluate", description=__doc__.splitlines()[0])
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--data", type=Path, help="an ultralytics data.yaml")
    given.add_argument(
        "--unlabelled",
        type=Path,
        metavar="DIR",
        help="a folder of photos without labels: contact sheets (HTML + PNG) and counts of every "
        "detection at the scan thresholds, in --out (default runs/unlabelled/<DIR name>)",
    )
    parser.add_argument("--model", help="name under models/, a folder, or a .onnx/.pt (default: settings)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: ONNX if the model has it")
    parser.add_argument("--device", default="cpu", help="for --backend ultralytics: cpu or a CUDA index")
    parser.add_argument("--split", default="val")
    parser.add_argument("--imgsz", type=positive_int, help="input size (default: the model's)")
    parser.add_argument(
        "--limit", type=positive_int, help="evaluate on (--unlabelled: look over) the first N images only"
    )
    parser.add_argument(
        "--out", type=Path, help="folder for PR curves and confusion matrix PNGs (--unlabelled: sheets)"
    )
    parser.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="SET_CLASS=CLASS",
        help="read a class of the set as this taxonomy class (e.g. win_ad=flyer); repeatable",
    )
    parser.add_argument(
        "--reviews",
        type=Path,
        help="the set's review file (datasets/reviews/): false detections where a class is confirmed absent",
    )
    parser.add_argument("--card-key", help="key under metrics in the card (default: the set's folder name)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--card",
        action="store_true",
        help="write the metrics into the model's card.yaml under metrics.<data set folder name>",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    model = args.model or settings.model
    if args.unlabelled:
        return look_over_folder(args, model, settings)
    rename = dict(pair.split("=", 1) for pair in args.rename if "=" in pair)
    if len(rename) != len(args.rename):
        parser.error("--rename takes SET_CLASS=CLASS")
    try:
        taxonomy = settings.taxonomy()
        detector = load_detector(
            model,
            backend=args.backend,
            models_dir=settings.models_dir,
            taxonomy=taxonomy,
            confidence=EVAL_CONFIDENCE,
            input_size=args.imgsz,
            device=args.device,
        )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
        absent = confirmed_absent(args.reviews, taxonomy, args.split) if args.reviews else None
        result = evaluate(
            detector,
            args.data.resolve(),
            taxonomy,
            args.split,
            args.out,
            args.limit,
            rename=rename,
            absent=absent,
        )
    except (ModelError, TaxonomyError, ReviewError) as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 1
    if result.ignored_classes:
        print(f"ignored (not taxonomy classes): {', '.join(result.ignored_classes)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        print(f"{result.model} on {args.data} ({args.split}, {result.images} images)")
        print_table(result)
    if result.plots:
        print(f"plots: {', '.join(str(p) for p in result.plots)}", file=sys.stderr)
    if args.card:
        folder = find_model(model, settings.models_dir).folder
        if folder is None:
            print("evaluate: --card needs a model folder with card.yaml", file=sys.stderr)
            return 1
        key = args.card_key or args.data.resolve().parent.name
        update_card(folder, metrics={key: card_entry(result)})
        print(f"card: {folder / 'card.yaml'} metrics.{key}", file=sys.stderr)
    return 0


def look_over_folder(args: argparse.Namespace, model: str, settings: Settings) -> int:
    folder: Path = args.unlabelled
    if not folder.is_dir():
        print(f"evaluate: --unlabelled {folder}: not a folder", file=sys.stderr)
        return 2
    try:
        taxonomy = settings.taxonomy()
        detector = load_detector(
            model,
            backend=args.backend,
            models_dir=settings.models_dir,
            taxonomy=taxonomy,
            confidence=min(c.min_confidence for c in taxonomy.classes),
            input_size=args.imgsz,
            device=args.device,
        )
    except (ModelError, TaxonomyError) as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 1
    look = look_over(detector, folder, taxonomy, args.limit)
    index = write_look(look, args.out or Path("runs") / "unlabelled" / folder.resolve().name, taxonomy)
    summary = look.to_json()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"{look.model} on {look.photos} photos of {folder}: {summary['detections']} detections")
        for name, count in look.per_class.items():
            with_it = summary["photos_with_detections"][name]
            print(
                f"  {name:<14}{count:>6}  on {with_it} photos ({count / max(look.photos, 1):.3f} per photo)"
            )
    for name, why in look.unreadable.items():
        print(f"unreadable: {name}: {why}", file=sys.stderr)
    print(f"contact sheets: {index}", file=sys.stderr)
    return 0
