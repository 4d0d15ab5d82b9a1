"""Pulling annotations from Label Studio on a timer, so that what a webhook missed still comes in.

`pull_and_queue` is the one pull (vision/data/annotations/pull.py) plus the retraining job the
webhook would have queued (`retrain_after`); `streetorder data pull` runs it once, and a service
with `labelstudio_pull_s` > 0 and Label Studio's URL and token runs it in a small thread, like
the model reloader. A failed pull (Label Studio down) is logged and tried again next time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from serve.api.periodic import Periodic
from serve.cases.settings import Settings
from vision.data.annotations.images import STORE, ImageFinder, TaskImages
from vision.data.annotations.pull import LabelStudio, PullReport, pull
from vision.modelops.retrain import Job, queue_if_due

log = logging.getLogger("streetorder.pull")


@dataclass(frozen=True)
class PullOutcome:
    report: PullReport
    pending: int  # annotations waiting for retraining
    job: Job | None  # queued (or extended) by this pull


def pull_and_queue(
    settings: Settings, at: datetime, *, projects: list[int] | None = None, everything: bool = False
) -> PullOutcome:
    """Pull new annotations into the inbox; queue a retraining job when `retrain_after` are waiting."""
    client = LabelStudio(settings.labelstudio_url, settings.labelstudio_token)
    report = pull(
        client,
        settings.annotations_dir,
        taxonomy=settings.taxonomy(),
        images=ImageFinder(  # the token too: Label Studio's uploads are fetched to be checked
            [],
            settings.cache_dir / STORE,
            TaskImages(settings.labelstudio_files_root, settings.labelstudio_url, settings.labelstudio_token),
        ),
        projects=projects,
        everything=everything,
    )
    due = settings.retrain_after if report.new else 0  # nothing new: nothing to queue
    pending, job = queue_if_due(settings.annotations_dir, due, at, None)
    return PullOutcome(report, pending, job)


class AnnotationPuller(Periodic):
    """Runs `pull_and_queue` every `labelstudio_pull_s` seconds (Label Studio down: next time)."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        enabled = settings.labelstudio_pull_s > 0 and bool(
            settings.labelstudio_url and settings.labelstudio_token
        )
        super().__init__("annotation pull", settings.labelstudio_pull_s, enabled)
        self.settings = settings
        self.clock = clock

    def tick(self) -> None:
        outcome = pull_and_queue(self.settings, self.clock())
        for project, problems in outcome.report.refused.items():
            for problem in problems:
                log.warning("pulled annotation refused: project %s: %s", project, problem)
        if outcome.report.new:
            log.info(
                "pulled %d new annotation(s) (%d repeats); %d waiting%s",
                outcome.report.new,
                outcome.report.repeats,
                outcome.pending,
                f"; job {outcome.job.id} queued" if outcome.job else "",
            )
