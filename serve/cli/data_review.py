"""`streetorder data review propose|sheets|apply|counts`: reviewed negatives (vision.data.reviews).

propose  run a model over a source's photos; append its boxes of classes the source does not label
         (--whole-photos: and ask about each photo where it boxed none of a class)
sheets   contact sheets (PNG pages and index.html) of the proposals, grouped by class, numbered by id;
         whole-photo questions one cell per photo, labelled with their ids (decide them together)
apply    record a reviewer's decisions by id: --false 1-40,42 --real 41 --unsure 43
counts   proposals and decisions per split and class, and the photos they settle (JSON)
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from serve.cases.settings import Settings, get_settings
from vision.core.sheets import SheetItem, write_contact_sheets
from vision.core.taxonomy import TaxonomyError
from vision.data.datamix import image_files, read_data_yaml, split_dirs
from vision.data.reviews import (
    DEFAULT_THRESHOLD,
    REVIEWS,
    Photo,
    Proposal,
    ReviewError,
    decide,
    decision_counts,
    photo_counts,
    propose,
    read_reviews,
    resolve,
    write_reviews,
)
from vision.detect.registry import ModelError


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streetorder data review",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("propose", "run a model over the source's photos and append its proposals"),
        ("sheets", "contact sheets of the proposals, grouped by class"),
        ("apply", "record decisions by proposal id"),
        ("counts", "proposals, decisions and settled photos per split and class (JSON)"),
    ):
        command = commands.add_parser(name, help=help_)
        command.add_argument("--data", type=Path, required=True, help="the source's ultralytics data.yaml")
        command.add_argument(
            "--reviews", type=Path, help="the review file (default: <data_dir>/reviews/<data folder>.jsonl)"
        )
    propose_cmd = commands.choices["propose"]
    propose_cmd.add_argument(
        "--model", help="name under models/, a folder, or a .onnx/.pt (default: settings)"
    )
    propose_cmd.add_argument(
        "--classes",
        help="comma-separated classes to propose (default: the patrol classes); labelled ones skipped",
    )
    propose_cmd.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    propose_cmd.add_argument("--splits", default="train,val")
    propose_cmd.add_argument(
        "--whole-photos",
        action="store_true",
        help="also propose the whole photo for each class the model boxed nothing of there: a reviewer's "
        "'false' makes the photo a negative of that class",
    )
    sheets = commands.choices["sheets"]
    sheets.add_argument("--out", type=Path, required=True, help="folder for index.html and sheets/")
    sheets.add_argument("--pending", action="store_true", help="only boxes not decided yet")
    sheets.add_argument("--ids", help="only these ids, e.g. 1-40,52")
    apply = commands.choices["apply"]
    for decision in ("false", "real", "unsure"):
        apply.add_argument(
            f"--{decision}", default="", metavar="IDS", help=f"ids decided '{decision}', e.g. 1-9,12"
        )
    apply.add_argument("--reviewer", required=True)
    apply.add_argument("--date", help="YYYY-MM-DD of the decisions (default: today, UTC)")
    apply.add_argument("--change", action="store_true", help="allow changing a box decided otherwise before")
    return parser


def parse_ids(text: str) -> list[int]:
    """'1-4,9' -> [1, 2, 3, 4, 9]."""
    ids: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or (high and int(high) < int(low)):
            raise ReviewError(f"not an id or range of ids: {part!r}")
        ids += range(int(low), int(high or low) + 1)
    return ids


def source_photos(data_yaml: Path, splits: list[str]) -> list[Photo]:
    data = read_data_yaml(data_yaml)
    return [
        Photo(split, image)
        for split in splits
        for folder in split_dirs(data_yaml, data, split)
        for image in image_files(folder)
    ]


def cli(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    data_yaml = args.data.resolve()
    reviews = args.reviews or settings.data_dir / REVIEWS / f"{data_yaml.parent.name}.jsonl"
    try:
        taxonomy = settings.taxonomy()
        existing = read_reviews(reviews, taxonomy) if reviews.exists() else []
        if args.command == "propose":
            return run_propose(args, data_yaml, reviews, existing, settings)
        if not existing:
            raise ReviewError(
                f"{reviews}: no proposals yet (streetorder data review propose --data {args.data})"
            )
        if args.command == "sheets":
            return run_sheets(args, data_yaml, reviews, existing)
        if args.command == "apply":
            decisions = {i: d for d in ("false", "real", "unsure") for i in parse_ids(getattr(args, d))}
            given = sum(len(parse_ids(getattr(args, d))) for d in ("false", "real", "unsure"))
            if len(decisions) != given:
                raise ReviewError("an id is given two decisions")
            on = datetime.strptime(args.date, "%Y-%m-%d").date() if args.date else datetime.now(UTC).date()
            write_reviews(reviews, decide(existing, decisions, args.reviewer, on, args.change))
            print(f"{reviews}: {len(decisions)} decisions recorded", file=sys.stderr)
            existing = read_reviews(reviews, taxonomy)
        settled = resolve(existing).values()
        print(json.dumps({"decisions": decision_counts(existing), "photos": photo_counts(settled)}, indent=1))
    except (ReviewError, TaxonomyError, ModelError, ValueError) as err:
        print(f"streetorder data review: {err}", file=sys.stderr)
        return 1
    return 0


def run_propose(
    args: argparse.Namespace, data_yaml: Path, reviews: Path, existing: list[Proposal], settings: Settings
) -> int:
    from tqdm import tqdm

    from vision.detect.backends import load_detector

    taxonomy = settings.taxonomy()
    labelled = set(taxonomy.map_names(read_data_yaml(data_yaml)["names"])[0].values())
    wanted = args.classes.split(",") if args.classes else [c.name for c in taxonomy.classes if c.patrol]
    classes = []
    for name in wanted:
        cls = taxonomy.resolve(name.strip())
        if cls is None:
            raise ReviewError(f"--classes: {name!r} is not a taxonomy class")
        if cls.index not in labelled:
            classes.append(cls.index)
    if not classes:
        raise ReviewError(f"{data_yaml}: the source labels every class asked for; nothing to propose")
    detector = load_detector(
        args.model or settings.model,
        models_dir=settings.models_dir,
        taxonomy=taxonomy,
        confidence=args.threshold,
    )
    photos = source_photos(data_yaml, args.splits.split(","))
    source = existing[0].source if existing else data_yaml.parent.name
    today = datetime.now(UTC).date()  # bookkeeping: when the proposals were made
    found = list(
        propose(
            detector,
            source,
            tqdm(photos, desc=f"propose {source}", unit="photo", file=sys.stderr),
            classes,
            existing,
            today,
            args.threshold,
            whole_photos=args.whole_photos,
        )
    )
    write_reviews(reviews, [*existing, *found])
    names = ", ".join(taxonomy.names[c] for c in classes)
    print(f"{reviews}: {len(found)} new proposals of {names} on {len(photos)} photos ({detector.version})")
    return 0


def photo_path(folders: dict[str, list[Path]], proposal: Proposal, data_yaml: Path) -> Path | None:
    """Where the proposal's photo is; None (and a warning) for a photo gone since."""
    for folder in folders[proposal.split]:
        if (folder / proposal.image).exists():
            return folder / proposal.image
    print(
        f"warning: #{proposal.id}: {proposal.split}/{proposal.image} not found under {data_yaml.parent}",
        file=sys.stderr,
    )
    return None


def run_sheets(args: argparse.Namespace, data_yaml: Path, reviews: Path, existing: list[Proposal]) -> int:
    data = read_data_yaml(data_yaml)
    folders = {split: split_dirs(data_yaml, data, split) for split in ("train", "val")}
    chosen = set(parse_ids(args.ids)) if args.ids else None
    shown = [
        p
        for p in existing
        if not (args.pending and p.decision is not None) and (chosen is None or p.id in chosen)
    ]
    whole: dict[tuple[str, str], list[Proposal]] = {}
    for p in shown:
        if p.whole_photo:
            whole.setdefault((p.split, p.image), []).append(p)
    items = []
    for p in sorted(shown, key=lambda p: (p.cls, p.id)):
        if p.whole_photo:
            continue
        if photo := photo_path(folders, p, data_yaml):
            decided = f" [{p.decision}]" if p.decision else ""
            caption = f"{p.confidence:.2f}{decided} {p.split}/{p.image}"
            items.append(SheetItem(str(p.id), p.cls, photo, p.xyxy, caption))
    for (split, image), members in sorted(whole.items(), key=lambda item: item[1][0].id):
        if photo := photo_path(folders, members[0], data_yaml):
            classes = "/".join(p.cls for p in members)
            label = ",".join(str(p.id) for p in members)
            items.append(
                SheetItem(label, "whole-photo", photo, members[0].xyxy, f"{split}/{image} {classes}")
            )
    title = f"{reviews.name}: {len(items)} proposals"
    index, pages = write_contact_sheets(items, args.out, title)
    print(f"{index} ({len(pages)} pages)")
    return 0
