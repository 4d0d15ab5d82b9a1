"""`streetorder data pull`: annotations fetched from Label Studio's REST API, so none is lost.

A webhook can fail (the service was down, the webhook had no key yet and got a 401, Label Studio
does not resend); a pull asks Label Studio itself. For each project whose labelling config has a
box or polygon control with taxonomy labels, it lists the tasks updated since the last pull (Label Studio's
own `tasks:updated_at`, kept per project in `<annotations_dir>/pull.json`), takes each task's
latest annotation that was not cancelled, checks it as the webhook and an import do
(`task_problems`), and records it in the inbox with the project's config
(vision/data/annotations/inbox.py). An annotation the webhook already delivered, or an earlier
pull, is recognised by its id and version and counted as a repeat. A refused annotation is named
with its task and why, and not kept: it stays in Label Studio, and once corrected there (a new
version, a newer `updated_at`) the next pull brings it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from vision.core.taxonomy import Taxonomy
from vision.data.annotations.images import ImageFinder
from vision.data.annotations.inbox import record_annotation
from vision.data.annotations.label_config import box_labels, taxonomy_labels
from vision.data.annotations.records import AnnotationError, Problem, shown
from vision.data.annotations.validate import task_problems

PULL_STATE = "pull.json"
PAGE_SIZE = 100
OVERLAP = timedelta(minutes=1)  # re-read the last minute: repeats are recognised, gaps would be lost


@dataclass(frozen=True)
class LabelStudio:
    """Label Studio's REST API with a user's access token (`Authorization: Token <token>`)."""

    url: str
    token: str
    timeout_s: float = 60.0

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """One JSON call; an HTTP error or an unreachable server is an AnnotationError naming the call."""
        query = f"?{urlencode(params)}" if params else ""
        request = urllib.request.Request(
            self.url.rstrip("/") + path + query,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            # the URL is the configured Label Studio's, never one a task or an export chose
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            raise AnnotationError(f"{method} {self.url}{path}", f"HTTP {err.code}: {detail}") from None
        except OSError as err:
            raise AnnotationError(f"{method} {self.url}{path}", f"cannot reach Label Studio: {err}") from None
        return json.loads(text) if text else None

    def projects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.call("GET", "/api/projects", page=page, page_size=PAGE_SIZE)
            items = body.get("results", []) if isinstance(body, dict) else body
            found += items
            if not isinstance(body, dict) or not body.get("next"):
                return found
            page += 1

    def project(self, project_id: int | str) -> dict[str, Any]:
        body = self.call("GET", f"/api/projects/{quote(str(project_id))}")
        if not isinstance(body, dict):
            raise AnnotationError(f"GET {self.url}/api/projects/{project_id}", "not a project")
        return body

    def tasks_updated_since(self, project_id: int | str, since: str | None) -> list[dict[str, Any]]:
        """The project's tasks, with annotations, updated after `since` (all when None)."""
        newer = {
            "filter": "filter:tasks:updated_at",
            "operator": "greater",
            "type": "Datetime",
            "value": since,
        }
        query = {"filters": {"conjunction": "and", "items": [newer] if since else []}}
        tasks: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.call(
                "GET",
                "/api/tasks",
                project=project_id,
                fields="all",
                page=page,
                page_size=PAGE_SIZE,
                query=json.dumps(query),
            )
            batch = body.get("tasks", []) if isinstance(body, dict) else []
            tasks += batch
            if not batch or len(tasks) >= int(body.get("total", 0)):
                return tasks
            page += 1


@dataclass
class PullReport:
    projects: dict[str, dict[str, int]] = field(default_factory=dict)  # project -> counts
    skipped: dict[str, str] = field(default_factory=dict)  # project -> why it was not pulled
    refused: dict[str, list[Problem]] = field(default_factory=dict)  # project -> refused annotations

    @property
    def new(self) -> int:
        return sum(counts["new"] for counts in self.projects.values())

    @property
    def repeats(self) -> int:
        return sum(counts["repeats"] for counts in self.projects.values())


def latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The task's latest annotation that was not cancelled (the one an export import counts)."""
    annotations = task.get("annotations")
    kept = (
        [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        if isinstance(annotations, list)
        else []
    )
    return max(kept, key=lambda a: str(a.get("updated_at") or ""), default=None)


def label_studio_time(moment: datetime) -> str:
    """The one form Label Studio's Datetime filter parses: UTC, microseconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read_state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(json.dumps(state, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    temporary.replace(path)


def pull(
    client: LabelStudio,
    annotations_dir: Path,
    *,
    projects: list[int] | None = None,
    everything: bool = False,
    taxonomy: Taxonomy,
    images: ImageFinder,
) -> PullReport:
    """Record every annotation changed since the last pull (or all, `everything`) in the inbox;
    those `task_problems` refuses go into the report by project (`images`: finds task images as
    the webhook and the retraining job do)."""
    annotations_dir.mkdir(parents=True, exist_ok=True)
    state_path = annotations_dir / PULL_STATE
    state = _read_state(state_path)
    marks: dict[str, str] = state.setdefault(client.url.rstrip("/"), {})
    wanted = [client.project(p) for p in projects] if projects else client.projects()
    report = PullReport()
    for project in wanted:
        key = str(project.get("id"))
        config = str(project.get("label_config") or "")
        try:  # a project of boxes or polygons (imported as their boxes) with a class of ours
            if config:
                taxonomy_labels(box_labels(config), taxonomy)
        except AnnotationError as err:
            report.skipped[key] = f"{project.get('title')!r}: {err.message}"
            continue
        since = None if everything else marks.get(key)
        query_since = label_studio_time(datetime.fromisoformat(since) - OVERLAP) if since else None
        counts = {"tasks": 0, "new": 0, "repeats": 0, "refused": 0}
        newest = since
        for task in client.tasks_updated_since(key, query_since):
            counts["tasks"] += 1
            if not isinstance(task, dict):
                report.refused.setdefault(key, []).append(Problem("task", "not a task object"))
                counts["refused"] += 1
                continue
            updated = str(task.get("updated_at") or "")
            if updated and (newest is None or updated > newest):
                newest = updated
            annotation = latest_annotation(task)
            if annotation is None:
                continue
            slim = {"id": task.get("id"), "data": task.get("data")}
            task_at = f"task {shown(slim['id'])}"
            where = f"{task_at} annotation {shown(annotation.get('id'))}"
            if problems := task_problems(slim, annotation, taxonomy, images, task_at, where):
                report.refused.setdefault(key, []).extend(problems)
                counts["refused"] += 1
                continue
            recorded = record_annotation(
                annotations_dir, project.get("id"), slim, annotation, label_config=config, via="pull"
            )
            counts["new" if recorded else "repeats"] += 1
        report.projects[key] = counts
        if newest:
            marks[key] = newest
        _write_state(state_path, state)  # after each project: a failure later loses no progress
    return report
