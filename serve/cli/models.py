"""`streetorder models`: list, promote (judged on the frozen holdout), roll back, prune and retrain
models (vision.modelops.promote, vision.modelops.retrain)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serve.cases.settings import get_settings
from vision.core.taxonomy import TaxonomyError
from vision.detect.registry import ModelError
from vision.modelops.history import history_table
from vision.modelops.promote import (
    CONFIG,
    Policy,
    PromotionError,
    Registry,
    holdout_digest,
    list_models,
    load_policy,
    promote,
    prune,
    rollback,
)
from vision.modelops.retrain import (
    Job,
    RetrainOptions,
    claim,
    jobs_dir,
    list_jobs,
    retrain,
    run_job,
)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder models", description=__doc__.splitlines()[0])
    settings = get_settings()
    parser.add_argument("--models-dir", type=Path, default=settings.models_dir)
    parser.add_argument(
        "--config",
        type=Path,
        default=settings.configs_dir / CONFIG,
        help="the promotion policy and frozen holdout",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="models, the current one marked, with their last decision")
    commands.add_parser("history", help="the registry history as JSON lines")
    commands.add_parser("table", help="the model history as one markdown table (docs/training.md)")
    promote_cmd = commands.add_parser(
        "promote", help="judge NAME on the holdout; make it current if not worse"
    )
    promote_cmd.add_argument("name")
    promote_cmd.add_argument("--force", metavar="REASON", help="make it current even if worse (recorded)")
    promote_cmd.add_argument(
        "--limit",
        type=int,
        help="first N holdout images per set: a quick look, not a decision (nothing recorded)",
    )
    back = commands.add_parser("rollback", help="make the previous current model current again")
    back.add_argument("--to", help="a model current once, instead of the previous one")
    back.add_argument("--reason", default="")
    commands.add_parser("holdout", help="print the holdout's sha256 (to freeze it in the config)")
    prune_cmd = commands.add_parser(
        "prune",
        help="remove from the tree the weights of models older than the one before the current one "
        "(only files a commit holds; the commit goes into their cards)",
    )
    prune_cmd.add_argument(
        "--commit", default="HEAD", help="the commit that keeps the weights (default: HEAD)"
    )
    retrain = commands.add_parser(
        "retrain", help="run queued retraining jobs (or one now): train, judge, promote"
    )
    add_arguments(retrain)
    args = parser.parse_args(argv)
    if args.command == "promote" and args.force is not None and args.limit is not None:
        parser.error("--force decides: judge on the whole holdout, without --limit")
    registry = Registry(args.models_dir)

    def policy() -> Policy:
        return load_policy(args.config, settings.taxonomy())

    now = datetime.now(UTC)  # when a person or job decided: bookkeeping, never a rule's input
    try:
        if args.command == "list":
            table = [[" ", "name", "version", "weights", "last decision", "status"]] + [
                [
                    "*" if row["current"] else " ",
                    row["name"],
                    row["version"],
                    row["weights"],
                    f"{row['decision']} {minute(row['decided_at'])}" if row["decision"] else "",
                    str(row["status"] or ""),  # last: a sentence at times
                ]
                for row in list_models(registry)
            ]
            for line in aligned(table):
                print(line)
        elif args.command == "history":
            for entry in registry.read()["history"]:
                print(json.dumps(entry, ensure_ascii=False, default=str))
        elif args.command == "table":
            print(history_table(args.models_dir), end="")
        elif args.command == "holdout":
            judged = policy()
            digest, images = holdout_digest(judged)
            print(f"{digest}  {judged.holdout_name} ({len(images)} images)")
        elif args.command == "promote":
            decision = promote(
                args.name,
                registry=registry,
                policy=policy(),
                at=now,
                force=args.force,
                limit=args.limit,
            )
            if args.limit is not None:
                verdict = "would be promoted" if decision.promote else "would be REFUSED"
                look = f"quick look on the first {args.limit} holdout images per set, not recorded"
                print(f"{args.name}: {verdict} ({look}): {decision.reason}")
            else:
                verdict = "promoted" if decision.promote else ("FORCED" if args.force else "REFUSED")
                print(f"{args.name}: {verdict}: {decision.reason}")
            return 0 if decision.promote or args.force else 1
        elif args.command == "prune":
            removed, left = prune(registry, args.commit)
            for path in removed:
                print(f"removed {path} (in the card: the commit that keeps it)")
            for path in left:
                print(f"left {path}: commit {args.commit} does not hold it as it is", file=sys.stderr)
        elif args.command == "rollback":
            target = rollback(registry=registry, at=now, to=args.to, reason=args.reason)
            print(f"current model: {target}")
        elif args.command == "retrain":
            return run_cli(args, registry, policy())
    except (PromotionError, ModelError, TaxonomyError) as err:
        print(f"models: {err}", file=sys.stderr)
        return 1
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--now", action="store_true", help="retrain now without a queued job (inbox not imported)"
    )
    parser.add_argument("--annotations-dir", type=Path, help="default: the service's annotations_dir setting")
    parser.add_argument("--files-root", type=Path, help="default: the labelstudio_files_root setting")
    parser.add_argument("--datasets-dir", type=Path, help="default: the data_dir setting")
    parser.add_argument(
        "--work-dir", type=Path, help="built datasets and mixes (default: <cache_dir>/retrain)"
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="ultralytics run folders")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--imgsz", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--name", help="name of the new model (default: <current>-rN)")


def job_clock() -> datetime:
    """The jobs' clock: when each step happened, bookkeeping only, never a rule's input."""
    return datetime.now(UTC)


def run_cli(args: argparse.Namespace, registry: Any, policy: Any) -> int:
    from vision.data.annotations.images import STORE, ImageFinder, TaskImages

    settings = get_settings()
    annotations_dir = args.annotations_dir or settings.annotations_dir
    options = RetrainOptions(
        datasets_dir=args.datasets_dir or settings.data_dir,
        work_dir=args.work_dir or settings.cache_dir / "retrain",
        runs_dir=args.runs_dir,
        epochs=args.epochs,
        batch=args.batch,
        imgsz=args.imgsz,
        workers=args.workers,
        name=args.name,
        cache_dir=settings.cache_dir,
    )
    if args.now:
        result = retrain(registry, policy, options, job_clock)
        print(json.dumps(result, ensure_ascii=False))
        return 0 if result["promoted"] else 1
    files_root = args.files_root or settings.labelstudio_files_root
    tasks = TaskImages(
        files_root,
        settings.labelstudio_url,
        settings.labelstudio_token,
        root_named=f"the allowed folder (the files root {files_root})",  # the job file is the operator's
    )
    finder = ImageFinder([], settings.cache_dir / STORE, tasks)
    done, code = 0, 0
    for job in list_jobs(annotations_dir, "queued"):
        claimed = claim(job)
        if claimed is None:
            continue
        finished = run_job(claimed, registry, policy, options, annotations_dir, finder, job_clock)
        print(job_line(finished))
        done += 1
        if finished.state == "failed" or not finished.body.get("promoted"):
            code = 1  # like --now: a failed job or a refused candidate is no success
    if not done:
        print(f"no queued retraining job in {jobs_dir(annotations_dir)}", file=sys.stderr)
    return code


def job_line(job: Job) -> str:
    """What became of a job, in one line; the job file keeps the whole record (a failed job printed
    it all, its traceback as one JSON string, for the error to be found in)."""
    body = job.body
    if job.state == "failed":
        return f"job {job.id}: failed: {body.get('error')} (traceback in {job.path})"
    verdict = "promoted" if body.get("promoted") else "refused"
    refused = (body.get("imported") or {}).get("problems") or []
    kept = f"; {len(refused)} annotation problem(s), left in the inbox: {refused[0]}" if refused else ""
    outcome = f"{body.get('model')} {verdict}: {body.get('reason')}{kept}"
    return f"job {job.id}: {job.state}: {outcome} ({job.path})"


def minute(at: Any) -> str:
    """A decision's time to the minute, in UTC as recorded ("2026-12-06 16:55 UTC"): the list showed
    the history's microseconds and offset; a time that does not read as one is shown as it is."""
    try:
        return datetime.fromisoformat(str(at)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(at or "")


def aligned(rows: list[list[str]]) -> list[str]:
    """Rows as text columns each as wide as its widest cell: a card's status is a sentence at times
    ("provisional (epoch 16 of ...)"), and a fixed width cut it."""
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return [
        " ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
