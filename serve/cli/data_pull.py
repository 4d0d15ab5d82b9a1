"""`streetorder data pull`: fetch the annotations made in Label Studio since the last pull
(its REST API, STREETORDER_LABELSTUDIO_URL and _TOKEN) into the annotations inbox."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from serve.cases.settings import get_settings
from vision.data.annotations.records import AnnotationError


def cli(argv: list[str]) -> int:
    from serve.api.pull import pull_and_queue

    parser = argparse.ArgumentParser(prog="streetorder data pull", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--project",
        type=int,
        action="append",
        help="only this Label Studio project (repeatable; default: every project with a box or "
        "polygon control)",
    )
    parser.add_argument(
        "--all", action="store_true", help="read every task again, not only those changed since the last pull"
    )
    parser.add_argument("--annotations-dir", type=Path, help="default: the annotations_dir setting")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.annotations_dir:
        settings = settings.model_copy(update={"annotations_dir": args.annotations_dir})
    if not (settings.labelstudio_url and settings.labelstudio_token):
        parser.error("set STREETORDER_LABELSTUDIO_URL and STREETORDER_LABELSTUDIO_TOKEN (Label Studio's API)")
    at = datetime.now(UTC)  # when the job was queued: bookkeeping, never a rule's input
    try:
        outcome = pull_and_queue(settings, at, projects=args.project, everything=args.all)
    except AnnotationError as err:
        print(f"data pull: {err}", file=sys.stderr)
        return 1
    for project, counts in outcome.report.projects.items():
        print(
            f"project {project}: {counts['tasks']} task(s) changed, {counts['new']} new annotation(s), "
            f"{counts['repeats']} already received, {counts['refused']} refused"
        )
    for project, why in outcome.report.skipped.items():
        print(f"project {project}: skipped ({why})")
    for project, problems in outcome.report.refused.items():
        for problem in problems:  # left in Label Studio: corrected there, the next pull brings it
            print(f"project {project}: refused: {problem}", file=sys.stderr)
    job = f"; retraining job {outcome.job.id} queued" if outcome.job else ""
    print(f"{outcome.pending} annotation(s) waiting in {settings.annotations_dir / 'inbox'}{job}")
    return 1 if outcome.report.refused else 0
