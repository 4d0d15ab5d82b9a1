"""The inbox of annotations received from Label Studio: no annotation lost, none taken twice.

Annotations arrive by the webhook, by `streetorder data pull` (Label Studio's API, which also
brings back what a webhook missed) and by the older `/train` call. Each task's latest annotation
is one file `<annotations_dir>/inbox/<project>-<task>.json`, written as one task of a Label Studio
JSON export, with the project's labelling config beside it (the classes its annotators could
draw, so an import never takes the whole taxonomy as labelled). A ledger
(`<annotations_dir>/received.json`) keeps the version of every annotation received, so the same
annotation coming twice (webhook and pull, two pulls) is recognised and recorded once, also after
a retraining job has consumed it; an edited annotation is a new version and comes in again.

Writers may be the service's threads and a CLI process at once: the ledger and the inbox change
under one file lock. Only the standard library: the service imports this module.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LEDGER = "received.json"


def inbox(annotations_dir: Path) -> Path:
    return annotations_dir / "inbox"


def inbox_file(annotations_dir: Path, project: Any, task_id: Any) -> Path:
    """One file per project and task. An id that is not short and plain (100 digits, a path, other
    characters) keeps a digest of itself in the name: cut to 40 safe characters alone, two such
    ids could share a file and the second annotation would overwrite the first."""
    names = []
    for value in (project, task_id):
        text = str(value)
        safe = re.sub(r"[^0-9A-Za-z_.-]", "_", text)[:40]
        if safe != text:
            safe += "~" + hashlib.sha256(text.encode()).hexdigest()[:12]
        names.append(safe)
    return inbox(annotations_dir) / f"{names[0]}-{names[1]}.json"


def annotation_version(annotation: dict[str, Any]) -> str:
    """What tells two versions of one annotation apart: its `updated_at` (read as UTC, however
    Label Studio formatted it), else a hash of its result."""
    stamp = annotation.get("updated_at")
    if isinstance(stamp, str) and stamp:
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            return stamp
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    result = json.dumps(annotation.get("result"), sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(result.encode()).hexdigest()


@contextmanager
def _locked(annotations_dir: Path) -> Iterator[dict[str, Any]]:
    """The ledger, read under an exclusive lock and written back atomically."""
    annotations_dir.mkdir(parents=True, exist_ok=True)
    with (annotations_dir / ".inbox.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = annotations_dir / LEDGER
        ledger = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        yield ledger
        _write_json(path, ledger)


def _write_json(path: Path, body: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(json.dumps(body, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    temporary.replace(path)


def record_annotation(
    annotations_dir: Path,
    project: Any,
    task: dict[str, Any],
    annotation: dict[str, Any],
    *,
    label_config: str | None = None,
    via: str = "webhook",
) -> bool:
    """Keep the task with this annotation unless this very version was received before.

    True when it was new (written to the inbox), False for a repeat.
    """
    key = f"{project}/{task.get('id')}"
    version = annotation_version(annotation)
    seen = {"annotation": annotation.get("id"), "version": version}
    with _locked(annotations_dir) as ledger:
        known = ledger.get(key)
        if known and ({k: known.get(k) for k in seen} == seen or older(version, known.get("version"))):
            return False
        record: dict[str, Any] = {
            "id": task.get("id"),
            "project": project,
            "data": task.get("data") or {},
            "annotations": [annotation],
        }
        if label_config:
            record["label_config"] = label_config
        _write_json(inbox_file(annotations_dir, project, task.get("id")), record)
        ledger[key] = {**seen, "via": via}
    return True


def older(version: str, than: Any) -> bool:
    """Whether an annotation version (`annotation_version`) was saved before another: a webhook
    delivered late or replayed must not put back what a newer annotation of the task replaced.
    Versions without a time (hashes of the result) are never older."""
    try:
        return datetime.fromisoformat(version) < datetime.fromisoformat(str(than))
    except (ValueError, TypeError):  # not times, or one without its zone
        return False


def forget_annotations(annotations_dir: Path, project: Any, annotation_ids: list[Any]) -> int:
    """Drop deleted annotations of a project from the inbox (those it keeps: an annotation a job
    took is in a dataset version already) and from the ledger, so that the task's other annotation
    can come in again by a pull. How many were dropped."""
    wanted = {str(i) for i in annotation_ids if i is not None}
    dropped = 0
    with _locked(annotations_dir) as ledger:
        for path in pending_annotations(annotations_dir):
            record = json.loads(path.read_text(encoding="utf-8"))
            kept = (record.get("annotations") or [{}])[0]
            if str(record.get("project")) == str(project) and str(kept.get("id")) in wanted:
                path.unlink()
                ledger.pop(f"{project}/{record.get('id')}", None)
                dropped += 1
    return dropped


def pending_annotations(annotations_dir: Path) -> list[Path]:
    folder = inbox(annotations_dir)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def claim_pending(annotations_dir: Path, into: Path) -> list[Path]:
    """Move every waiting annotation into `into` (a job's folder) at once, so that one arriving
    meanwhile stays in the inbox for the next job instead of being moved unread."""
    into.mkdir(parents=True, exist_ok=True)
    with _locked(annotations_dir):
        claimed = []
        for path in pending_annotations(annotations_dir):
            target = into / path.name
            path.replace(target)
            claimed.append(target)
    return claimed


def return_to_inbox(annotations_dir: Path, files: list[Path]) -> None:
    """Put claimed annotations back (they could not be imported), unless a newer one of the same
    task arrived meanwhile."""
    with _locked(annotations_dir):
        for path in files:
            target = inbox(annotations_dir) / path.name
            if target.exists():
                path.unlink()
            else:
                path.replace(target)
