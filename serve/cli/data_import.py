"""`streetorder data import`: add a Label Studio / CVAT export to a versioned dataset
(vision.data.annotations)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from serve.cases.settings import Settings, get_settings
from vision.core.phash import KnownImages
from vision.data.annotations.dataset import Dataset
from vision.data.annotations.images import STORE, ImageFinder, TaskImages
from vision.data.annotations.importer import import_export
from vision.data.annotations.pull import LabelStudio
from vision.data.annotations.readers import FORMATS, Limits, read_text
from vision.data.annotations.records import AnnotationError, Problem


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder data import", description=__doc__.splitlines()[0])
    parser.add_argument(
        "export", type=Path, help="a Label Studio JSON / JSON-MIN file, or a YOLO / COCO zip or folder"
    )
    parser.add_argument("--dataset", required=True, help="datasets/<name>/ to add a version to")
    parser.add_argument("--format", choices=FORMATS, default="auto")
    parser.add_argument(
        "--images",
        type=Path,
        action="append",
        default=[],
        help="folder of the export's images (repeatable): Label Studio's media/upload, the photo archive",
    )
    parser.add_argument(
        "--files-root",
        type=Path,
        help="Label Studio's local-files document root (for /data/local-files/?d=...)",
    )
    parser.add_argument(
        "--label-config",
        type=Path,
        help="the Label Studio project's labelling config (XML: Settings > Labeling Interface > Code); "
        "default: read from Label Studio (STREETORDER_LABELSTUDIO_URL and _TOKEN) for the tasks' project",
    )
    parser.add_argument(
        "--project", type=int, help="the Label Studio project of the export (JSON-MIN does not say)"
    )
    parser.add_argument(
        "--labelled",
        help="comma-separated classes the annotators labelled (default: the export's label list or its "
        "project's labelling config; never the whole taxonomy)",
    )
    parser.add_argument(
        "--negatives", action="store_true", help="keep images without boxes as negative images"
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="add the valid images even when others have problems"
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="where images found only inside an archive are kept (default: cache_dir/images)",
    )
    parser.add_argument("--datasets-dir", type=Path, help="default: the data_dir setting")
    parser.add_argument(
        "--no-holdout-check", action="store_true", help="do not refuse images of the frozen holdout"
    )
    parser.add_argument(
        "--max-mb",
        type=float,
        help="largest file read whole, MiB (default: the annotation_import_max_mb setting, 256)",
    )
    parser.add_argument(
        "--max-items",
        type=int,
        help="most tasks, rows, images, annotations or lines in one list of the export "
        "(default: the annotation_import_max_items setting, 100000)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    if not (args.max_mb is None or args.max_mb > 0) or not (args.max_items is None or args.max_items > 0):
        parser.error("--max-mb and --max-items must be positive")
    limits = Limits(
        max_bytes=int((args.max_mb or settings.annotation_import_max_mb) * 2**20),
        max_items=args.max_items or settings.annotation_import_max_items,
    )
    taxonomy = settings.taxonomy()
    try:
        label_config_of = label_configs(args, settings, limits)
    except ValueError as err:
        parser.error(str(err))
    refused: KnownImages | None = None
    if not args.no_holdout_check:
        from vision.modelops.promote import CONFIG as PROMOTION
        from vision.modelops.promote import holdout_refusals

        refused = holdout_refusals(settings.configs_dir / PROMOTION, taxonomy, settings.cache_dir)
    store = args.store or settings.cache_dir / STORE
    files_root = f"the allowed folder (--files-root {args.files_root})"  # the CLI's user may see it
    finder = ImageFinder(
        list(args.images), store, TaskImages(files_root=args.files_root, root_named=files_root)
    )
    labelled = [n.strip() for n in args.labelled.split(",") if n.strip()] if args.labelled else None
    try:
        dataset = Dataset.open(args.dataset, args.datasets_dir or settings.data_dir)
        counts, problems = import_export(
            args.export,
            dataset,
            finder,
            taxonomy=taxonomy,
            format_name=args.format,
            negatives=args.negatives,
            labelled=labelled,
            label_config_of=label_config_of,
            skip_invalid=args.skip_invalid,
            refused=refused,
            limits=limits,
        )
    except AnnotationError as err:
        print(f"data import: {err}", file=sys.stderr)
        return 1
    for line in said_once(problems):
        print(line, file=sys.stderr)
    if problems and not args.skip_invalid:
        print(
            f"data import: {len(problems)} problem(s); nothing added (fix them, or --skip-invalid)",
            file=sys.stderr,
        )
        return 1
    print(
        f"{dataset.name} v{dataset.version}: {counts['added']} added, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {skipped(counts)}, {len(problems)} problem(s) ({dataset.path})"
    )
    return 0


def said_once(problems: Sequence[Problem]) -> Iterator[str]:
    """Each problem once, at its first place, with how many more places have the same: an export of
    1,000 tasks without its labelling config printed the same line 1,000 times (the count says all)."""
    places: dict[str, list[str]] = {}
    for problem in problems:
        places.setdefault(problem.message, []).append(problem.where)
    for message, where in places.items():
        more = ""
        if len(where) > 1:
            shown = ", ".join(where[1:4]) + (", ..." if len(where) > 4 else "")
            more = f" (the same at {len(where) - 1} more: {shown})"
        yield f"{where[0]}: {message}{more}"


def skipped(counts: dict[str, Any]) -> str:
    """What was read and not taken, each for what it is: a task nobody annotated, results that
    are no boxes (by type), an image with only such results (neither is a negative), an older
    annotation of a task whose latest counts."""
    parts = [f"{counts['unlabelled']} unlabelled skipped"]
    parts += [
        f"{n} result{'s' * (n != 1)} of unsupported type {kind} skipped"
        for kind, n in counts["unsupported"].items()
    ]
    if counts["unsupported_only"]:
        parts.append(
            f"{counts['unsupported_only']} image(s) with only unsupported results skipped (not negatives)"
        )
    if counts["superseded"]:
        parts.append(
            f"{counts['superseded']} older annotation(s) of a task skipped (the one saved last counts)"
        )
    return ", ".join(parts)


def label_configs(
    args: argparse.Namespace, settings: Settings, limits: Limits
) -> Callable[[str | None], str | None] | None:
    """Where the labelling config of an export's project comes from: --label-config (a file read
    within the import's limits: a FIFO or /dev/zero was read for ever), or Label Studio itself (the
    tasks' project, or --project) when its URL and token are configured."""
    if args.label_config:
        try:
            text = read_text(args.label_config, limits.max_bytes)
        except AnnotationError as err:
            raise ValueError(f"--label-config {err}") from None
        return lambda project: text
    if not (settings.labelstudio_url and settings.labelstudio_token):
        if args.project is not None:
            raise ValueError("--project needs STREETORDER_LABELSTUDIO_URL and STREETORDER_LABELSTUDIO_TOKEN")
        return None
    client = LabelStudio(settings.labelstudio_url, settings.labelstudio_token)

    def of(project: str | None) -> str | None:
        wanted = str(args.project) if args.project is not None else project
        return str(client.project(wanted).get("label_config") or "") or None if wanted else None

    return of
