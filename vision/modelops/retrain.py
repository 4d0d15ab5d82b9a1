"""Retraining jobs: annotations come in, a job is queued, a worker trains, judges and promotes.

The service never trains (it would starve inference on a small machine); a Label Studio webhook or
a pull only records annotations (`<annotations_dir>/inbox/`, vision/data/annotations/inbox.py) and
queues a job file (`<annotations_dir>/jobs/<id>.queued.json`). `streetorder models retrain` runs
queued jobs:

1. the inbox's annotations are imported, validated, into the dataset (datasets/<name>/, a new
   version) like any export;
2. a new model is trained starting from the current model's weights, on the base mix's train
   splits plus the datasets (validation on the datasets' own val split: the frozen holdout is
   never seen, not even to pick the best epoch);
3. it is packaged as models/<current>-rN with ONNX, judged on the frozen holdout, and promoted
   only if not worse (vision/modelops/promote.py), which a running service picks up by itself.

Job states are in the file names (queued -> running -> done | failed), so claiming a job is one
atomic rename. Only the standard library at import time: the service imports this module.
"""

from __future__ import annotations

import json
import re
import secrets
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from vision.data.annotations.inbox import pending_annotations

JOB_NAME = re.compile(r"^(?P<id>[0-9TZ]+-[0-9a-f]+)\.(?P<state>queued|running|done|failed)\.json$")


class JobError(RuntimeError):
    """A retraining job that cannot run; the message says what is missing."""


# --- jobs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    path: Path
    id: str
    state: str
    body: dict[str, Any]


def jobs_dir(annotations_dir: Path) -> Path:
    return annotations_dir / "jobs"


def list_jobs(annotations_dir: Path, state: str | None = None) -> list[Job]:
    folder = jobs_dir(annotations_dir)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        match = JOB_NAME.match(path.name)
        if match and (state is None or match["state"] == state):
            found.append(Job(path, match["id"], match["state"], json.loads(path.read_text(encoding="utf-8"))))
    return found


def queue_job(annotations_dir: Path, reason: str, at: datetime, **details: Any) -> Job:
    """Queue a retraining job, or add the reason to the one already waiting (one job is enough)."""
    waiting = list_jobs(annotations_dir, "queued")
    if waiting:
        job = waiting[0]
        body = {**job.body, "reasons": [*job.body.get("reasons", []), reason]}
        _write(job.path, body)
        return Job(job.path, job.id, job.state, body)
    folder = jobs_dir(annotations_dir)
    folder.mkdir(parents=True, exist_ok=True)
    job_id = f"{at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
    body = {"id": job_id, "queued_at": at.isoformat(), "reasons": [reason], **details}
    path = folder / f"{job_id}.queued.json"
    _write(path, body)
    return Job(path, job_id, "queued", body)


def queue_if_due(
    annotations_dir: Path, retrain_after: int, at: datetime, project: Any = None
) -> tuple[int, Job | None]:
    """Annotations waiting, and the job queued when `retrain_after` (> 0) of them wait."""
    pending = len(pending_annotations(annotations_dir))
    if not retrain_after or pending < retrain_after:
        return pending, None
    reason = f"{pending} new annotations (retrain_after {retrain_after})"
    return pending, queue_job(annotations_dir, reason, at, project=project)


def _write(path: Path, body: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(json.dumps(body, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    temporary.replace(path)


def claim(job: Job) -> Job | None:
    """queued -> running by one rename; None when another worker got it first."""
    running = job.path.with_name(f"{job.id}.running.json")
    try:
        job.path.rename(running)
    except FileNotFoundError:
        return None
    return Job(running, job.id, "running", job.body)


def finish(job: Job, state: str, **result: Any) -> Job:
    path = job.path.with_name(f"{job.id}.{state}.json")
    body = {**job.body, **result}
    _write(path, body)
    job.path.unlink(missing_ok=True)
    return Job(path, job.id, state, body)


# --- the retraining itself -----------------------------------------------------------------------


def next_name(models_dir: Path, current: str) -> str:
    """`<current without -rN>-r<N>` with the smallest N not taken."""
    base = re.sub(r"-r\d+$", "", current)
    number = 1
    while (models_dir / f"{base}-r{number}").exists():
        number += 1
    return f"{base}-r{number}"


def train_only(data_yaml: Path, out: Path) -> Path:
    """A copy of a data.yaml that keeps only its train split (absolute paths, licence comments kept)."""
    from vision.data.datamix import read_data_yaml, split_dirs

    data = read_data_yaml(data_yaml)
    folders = [str(p) for p in split_dirs(data_yaml, data, "train")]
    if not folders:
        raise JobError(f"{data_yaml}: no train split")
    comments = [line for line in data_yaml.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "data.yaml"
    body = yaml.safe_dump({"train": folders, "names": data["names"]}, allow_unicode=True)
    path.write_text("\n".join([*comments, body]), encoding="utf-8")
    return path


def training_mix(
    policy_retrain: dict[str, Any], config: Path, datasets: list[tuple[str, Path]], work: Path, taxonomy: Any
) -> Path:
    """The job's mix file: the base mix's train splits (with its `train_fraction`, `oversample`
    and reviews), and the datasets (train and val)."""
    from vision.core.taxonomy import TaxonomyError
    from vision.data.datamix import load_mix

    names = taxonomy.names
    sources: list[dict[str, Any]] = []
    base = policy_retrain.get("base_mix")
    if base:
        try:
            _, base_sources = load_mix((config.parent / str(base)).resolve(), taxonomy)
        except TaxonomyError as err:  # most often a generated source not made on this machine yet
            raise JobError(
                f"base_mix {base}: {err} (a generated source, synthetic flyers or pasted objects, is made "
                "by the command in its mix file's comments: docs/training.md)"
            ) from err
        for source in base_sources:
            sources.append(
                source.spec(names, str(train_only(source.data_yaml, work / "train-only" / source.name)))
            )
    sources += [{"name": name, "data": str(data_yaml)} for name, data_yaml in datasets]
    mix = work / "retrain.mix.yaml"
    mix.write_text(yaml.safe_dump({"name": "retrain", "sources": sources}), encoding="utf-8")
    return mix


def import_inbox(
    annotations_dir: Path,
    dataset_name: str,
    datasets_dir: Path,
    job_id: str,
    finder: Any,
    at: datetime,
    policy: Any,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Import the inbox's annotations into the dataset (one version); consumed files move to
    done/<job>/. Invalid annotations are reported and go back to the inbox for a person. The
    holdout's looks are cached in `cache_dir` (the cache_dir setting; None: decoded every time)."""
    from vision.data.annotations.dataset import Dataset
    from vision.data.annotations.importer import import_export
    from vision.data.annotations.inbox import claim_pending, return_to_inbox
    from vision.modelops.promote import holdout_refusals

    done = annotations_dir / "done" / job_id
    files = claim_pending(annotations_dir, done)
    if not files:
        return {"annotations": 0}
    tasks = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    export = done / "tasks.json"
    export.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    dataset = Dataset.open(dataset_name, datasets_dir)
    counts, problems = import_export(
        export,
        dataset,
        finder,
        format_name="labelstudio-json",
        skip_invalid=True,
        refused=holdout_refusals(policy.source, policy.taxonomy, cache_dir),
        at=at,
        taxonomy=policy.taxonomy,
    )
    bad = {int(m["index"]) for p in problems if (m := re.search(r"tasks\[(?P<index>\d+)\]", p.where))}
    return_to_inbox(annotations_dir, [file for index, file in enumerate(files) if index in bad])
    return {
        "annotations": len(files),
        **counts,
        "problems": [str(p) for p in problems],
        "dataset_version": dataset.version,
    }


@dataclass(frozen=True)
class RetrainOptions:
    datasets_dir: Path
    work_dir: Path
    runs_dir: Path
    epochs: int | None = None
    batch: int | None = None
    imgsz: int | None = None
    workers: int | None = None
    name: str | None = None
    cache_dir: Path | None = None  # the cache_dir setting: the holdout's looks (holdout_refusals)


def retrain(
    registry: Any, policy: Any, options: RetrainOptions, clock: Callable[[], datetime]
) -> dict[str, Any]:
    """Train a candidate from the current model on the datasets, package it, judge and maybe promote it.

    `clock` gives each record its own time: a job runs for hours, and a promotion stamped with the
    time training began would sit in the history before decisions made while it trained."""
    from vision.data.annotations.dataset import Dataset
    from vision.data.annotations.records import AnnotationError
    from vision.detect.registry import WEIGHTS, find_model, read_card, update_card
    from vision.modelops.export import export_model, package
    from vision.modelops.promote import check_holdout, promote
    from vision.modelops.train import average_checkpoints, start_weights, train

    started = clock()
    current = registry.current
    if current is None:
        raise JobError(f"{registry.path}: no current model to train from")
    # a holdout not frozen, or changed, refuses every judgement: say so before hours of training
    check_holdout(policy)
    files = find_model(registry.models_dir / current, registry.models_dir)
    if "ultralytics" not in files.weights:
        raise JobError(
            f"{files.folder}: no {WEIGHTS['ultralytics']} to train from (ONNX weights cannot be trained)"
        )
    settings = policy.retrain
    built: list[tuple[str, Path]] = []
    versions = {}
    for dataset_name in settings["datasets"]:
        dataset = Dataset.open(str(dataset_name), options.datasets_dir)
        if not dataset.images:
            continue
        problems = dataset.verify()
        if problems:
            raise JobError("; ".join(str(p) for p in problems[:5]) + (" ..." if len(problems) > 5 else ""))
        try:
            built += dataset.build(options.work_dir / "datasets", policy.taxonomy)
        except AnnotationError as err:
            raise JobError(str(err)) from err
        versions[dataset.name] = dataset.version
    if not built:
        raise JobError(f"no annotated images in {options.datasets_dir} ({', '.join(settings['datasets'])})")
    name = options.name or next_name(registry.models_dir, current)
    mix = training_mix(settings, policy.source, built, options.work_dir, policy.taxonomy)
    card = read_card(files.folder) if files.folder else {}
    start = start_weights(str(files.weights["ultralytics"]), options.work_dir, policy.taxonomy.names)
    run_dir = train(
        data=mix,
        taxonomy=policy.taxonomy,
        model=start,
        epochs=options.epochs or settings["epochs"],
        imgsz=int(options.imgsz or settings["imgsz"] or card.get("input_size") or 320),
        batch=options.batch or settings["batch"],
        project=options.runs_dir,
        name=name,
        cache_dir=options.work_dir,
        workers=options.workers if options.workers is not None else settings["workers"],
        lr0=settings["lr0"],
        mosaic=settings["mosaic"],
    )
    candidate = run_dir / "weights" / "best.pt"
    if settings["average_with_start"]:
        # the recipe that made the shipped models: the fine-tuned run's weights averaged 1:1 with
        # its start keep what the start scored while adding what the run learned (docs/training.md)
        candidate = (
            average_checkpoints([Path(start), candidate], run_dir / "averaged") / "weights" / "last.pt"
        )
    folder = package(
        candidate,
        name,
        models_dir=registry.models_dir,
        status=f"candidate retrained from {current}",
    )
    export_model(folder, "onnx")
    update_card(
        folder,
        retrained_from={
            "model": current,
            "datasets": versions,
            "at": started.isoformat(),
            "base_mix": settings["base_mix"],
            "averaged_with_start": settings["average_with_start"],
        },
    )
    decision = promote(name, registry=registry, policy=policy, at=clock())
    return {
        "model": name,
        "promoted": decision.promote,
        "reason": decision.reason,
        "failed": list(decision.failed),
        "datasets": versions,
    }


def run_job(
    job: Job,
    registry: Any,
    policy: Any,
    options: RetrainOptions,
    annotations_dir: Path,
    finder: Any,
    clock: Callable[[], datetime],
) -> Job:
    """One claimed job: import its annotations, retrain, judge; the outcome goes into the job file."""
    started = clock()
    try:
        dataset_name = str((policy.retrain.get("datasets") or ["bureau"])[0])
        imported = import_inbox(
            annotations_dir,
            dataset_name,
            options.datasets_dir,
            job.id,
            finder,
            started,
            policy,
            cache_dir=options.cache_dir,
        )
        result = retrain(registry, policy, options, clock)
    except Exception as err:  # any failure ends this job as failed with the reason, never silently
        return finish(
            job,
            "failed",
            started_at=started.isoformat(),
            finished_at=clock().isoformat(),
            error=f"{type(err).__name__}: {err}",
            trace=traceback.format_exc(limit=5),
        )
    return finish(
        job,
        "done",
        started_at=started.isoformat(),
        finished_at=clock().isoformat(),
        imported=imported,
        **result,
    )


# --- streetorder models retrain ------------------------------------------------------------------------
