"""`streetorder models`: which model is current, and when a new one may replace it.

A model replaces the current one only after both were evaluated on the same **frozen holdout**
(configs/promotion.yaml: labelled sets never trained on, pinned by a sha256 of every image and
label file and of the review decisions on them) and the new one is not worse on any judged class
by more than that class's tolerance, nor finds more of a patrol class, per photo, on the holdout
photos where reviews confirmed that class absent (datasets/reviews/), beyond a tolerance; nor, by
more than `drift` times those tolerances, than the holdout's anchor (the model current when the
holdout was first used), so small losses cannot add up promotion after promotion. The
decision, both models' scores and the classes that failed go into the new model's card and into
the registry history (models/registry.yaml), refusals included. A promotion is one atomic
rewrite of the registry; a running service follows it without a restart (serve/api/reload.py).
`rollback` makes the previous current model current again.

Only the current model and the one before it keep their weights in the tree: `prune` removes the
weights of older ones once a git commit holds them, and records that commit in their cards, so
`rollback` to one of them says how to restore its weights.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, NonNegativeFloat, PositiveInt, ValidationInfo, field_validator

from vision.core.config import ConfigModel, load_config_file
from vision.core.files import file_sha256, read_regular_file, write_atomically
from vision.core.imageio import ImageError, decode_photo
from vision.core.phash import KnownImages, perceptual_hash
from vision.core.taxonomy import Taxonomy, TaxonomyError
from vision.core.yamlfile import read_yaml
from vision.data.datamix import image_files, label_path, read_data_yaml, split_dirs
from vision.data.reviews import ReviewError, confirmed_absent
from vision.detect.registry import (
    REGISTRY,
    WEIGHT_SUFFIXES,
    WEIGHTS,
    ModelError,
    check_model_name,
    find_model,
    model_version,
    read_card,
    recorded_weights,
    update_card,
)

CONFIG = "promotion.yaml"  # in the configs folder (the configs_dir setting)
CURRENT_ACTIONS = ("initial", "promote", "force", "rollback")  # history entries that set `current`
# the score table's row of false detections per photo where reviews confirmed a class absent
CONFIRMED_ABSENT = "confirmed-absent"
REGISTRY_HEADER = (
    "# The model registry: which model under models/ is current (the service, scans and Label Studio use\n"
    "# it when their model is `current`), and the history of every promotion, refusal and rollback.\n"
    "# Written only by `streetorder models promote|rollback|retrain` (vision/modelops/promote.py).\n"
)


class PromotionError(ValueError):
    """Promotion cannot be decided: a changed holdout, an unknown model, a broken config."""


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldoutSet:
    name: str
    data: Path  # an ultralytics data.yaml
    split: str
    reviews: Path | None = None  # the set's review file (datasets/reviews/): confirmed-absent classes

    def absent(self, taxonomy: Taxonomy) -> dict[str, frozenset[str]]:
        """Photo file name -> classes reviews confirmed absent there, in this set's split."""
        if self.reviews is None:
            return {}
        try:
            return confirmed_absent(self.reviews, taxonomy, self.split)
        except ReviewError as err:
            raise PromotionError(str(err)) from err


@dataclass(frozen=True)
class FalseDetectionRule:
    """How many more detections per photo of a class a candidate may make, than the current model,
    on the holdout photos where reviews confirmed that class absent (pooled over the sets)."""

    classes: tuple[str, ...]
    tolerance: float
    min_photos: int


class RetrainSpec(ConfigModel):
    """The retraining job's recipe (vision/modelops/retrain.py); promotion.yaml's comments say why."""

    base_mix: str | None = None  # relative to the policy file
    datasets: list[str] = ["bureau"]
    epochs: PositiveInt = 10
    batch: PositiveInt = 16
    workers: Annotated[int, Field(ge=0)] = 2
    imgsz: Annotated[int, Field(ge=32, le=4096)] | None = None
    lr0: Annotated[float, Field(gt=0, lt=1)] | None = None  # fine-tune at this rate, no warm-up (train --lr0)
    mosaic: Annotated[float, Field(ge=0, le=1)] = 1.0
    average_with_start: bool = False  # the candidate is the 1:1 mean of the run and its start


@dataclass(frozen=True)
class Policy:
    """How a candidate is judged (configs/promotion.yaml), with the taxonomy of the same configuration."""

    taxonomy: Taxonomy
    metric: str
    default_tolerance: float
    tolerances: dict[str, float]
    min_instances: int
    holdout_name: str
    holdout: tuple[HoldoutSet, ...]
    holdout_sha256: str | None
    retrain: dict[str, Any] = field(default_factory=lambda: RetrainSpec().model_dump())
    source: Path = Path(CONFIG)
    false_detections: FalseDetectionRule | None = None
    drift: float | None = None  # times each tolerance, against the holdout's anchor model

    def tolerance(self, class_name: str) -> float:
        return self.tolerances.get(class_name, self.default_tolerance)


class ToleranceSpec(ConfigModel):
    default: NonNegativeFloat = 0.0
    classes: dict[str, NonNegativeFloat] = {}


class HoldoutSetSpec(ConfigModel):
    data: str  # an ultralytics data.yaml, relative to the policy file ($VARS expanded)
    split: str = "val"
    name: str | None = None
    reviews: str | None = None  # the set's review file, relative to the policy file


class HoldoutSpec(ConfigModel):
    name: str = "holdout"
    sets: list[HoldoutSetSpec] = Field(min_length=1)  # nothing to judge a model on without one
    sha256: str | None = None


class FalseDetectionSpec(ConfigModel):
    classes: list[str]
    tolerance: NonNegativeFloat = 0.0  # detections per photo
    min_photos: PositiveInt = 1

    @field_validator("classes")
    @classmethod
    def _taxonomy_classes(cls, classes: list[str], info: ValidationInfo) -> list[str]:
        names = (info.context or {})["taxonomy"].names
        if unknown := [c for c in classes if c not in names]:
            raise ValueError(f"not taxonomy classes: {unknown}")
        return classes


class PromotionFile(ConfigModel):
    """configs/promotion.yaml (its comments explain each field)."""

    metric: Literal["ap50", "ap50_95"] = "ap50"
    tolerance: ToleranceSpec = ToleranceSpec()
    min_instances: int = 1
    holdout: HoldoutSpec
    false_detections: FalseDetectionSpec | None = None
    drift: NonNegativeFloat | None = None
    retrain: RetrainSpec = RetrainSpec()


def load_policy(path: Path, taxonomy: Taxonomy) -> Policy:
    """`<configs_dir>/promotion.yaml`; PromotionError names a bad field or a missing review file."""
    spec = load_config_file(path, PromotionFile, error=PromotionError, context={"taxonomy": taxonomy})
    sets = []
    for index, entry in enumerate(spec.holdout.sets):
        data_yaml = (path.parent / os.path.expandvars(entry.data)).resolve()
        reviews = (path.parent / entry.reviews).resolve() if entry.reviews else None
        if reviews is not None and not reviews.is_file():
            raise PromotionError(f"{path}: holdout.sets[{index}].reviews: no such file {reviews}")
        sets.append(HoldoutSet(entry.name or data_yaml.parent.name, data_yaml, entry.split, reviews))
    rule = spec.false_detections
    return Policy(
        taxonomy=taxonomy,
        metric=spec.metric,
        default_tolerance=spec.tolerance.default,
        tolerances=dict(spec.tolerance.classes),
        min_instances=spec.min_instances,
        holdout_name=spec.holdout.name,
        holdout=tuple(sets),
        holdout_sha256=spec.holdout.sha256,
        retrain=spec.retrain.model_dump(),
        source=path,
        false_detections=FalseDetectionRule(tuple(rule.classes), rule.tolerance, rule.min_photos)
        if rule
        else None,
        drift=spec.drift,
    )


# --- the frozen holdout -------------------------------------------------------------------------


def holdout_files(policy: Policy) -> Iterator[tuple[HoldoutSet, Path, Path]]:
    """(set, image, label file) of every holdout image, in a stable order."""
    for holdout in policy.holdout:
        data = read_data_yaml(holdout.data)
        for folder in split_dirs(holdout.data, data, holdout.split):
            for image in image_files(folder):
                yield holdout, image, label_path(image)


def holdout_digest(policy: Policy) -> tuple[str, dict[str, str]]:
    """sha256 over every holdout image and label file (names and contents) and the classes reviews
    confirmed absent on them (decisions on train photos leave it alone); and image sha -> set."""
    digest = hashlib.sha256()
    images: dict[str, str] = {}
    absent = {holdout.name: holdout.absent(policy.taxonomy) for holdout in policy.holdout}
    for holdout, image, label in holdout_files(policy):
        image_sha = file_sha256(image)
        label_sha = file_sha256(label) if label.exists() else "-"
        line = f"{holdout.name}/{holdout.split}/{image.name} {image_sha} {label_sha}"
        if image.name in absent[holdout.name]:
            line += f" absent {','.join(sorted(absent[holdout.name][image.name]))}"
        digest.update(f"{line}\n".encode())
        images[image_sha] = f"{holdout.name}/{holdout.split}"
    return digest.hexdigest(), images


def check_holdout(policy: Policy) -> str:
    """The holdout's digest, refused when it differs from the frozen one in the config."""
    digest, images = holdout_digest(policy)
    if not images:
        raise PromotionError(f"{policy.source}: the holdout has no images (are the data sets there?)")
    if policy.holdout_sha256 is None:
        raise PromotionError(
            f"{policy.source}: holdout.sha256 is not set; freeze the holdout by setting it to {digest}"
        )
    if digest != policy.holdout_sha256:
        raise PromotionError(
            f"{policy.source}: the holdout changed (sha256 {digest}, frozen {policy.holdout_sha256}); models "
            "judged on different holdouts cannot be compared. Restore it, or freeze a new holdout on purpose."
        )
    return digest


# the looks of holdout photos, a file per frozen holdout, in the cache folder (the cache_dir setting)
HOLDOUT_LOOKS = "holdout-looks"
# what a cached look is; a change to decode_photo or perceptual_hash that moves hashes must change it
LOOKS_FORMAT = "streetorder holdout looks: image sha256 -> perceptual_hash(decode_photo(bytes)) v1"
PHASH_TEXT = re.compile(r"[0-9a-f]{16}")


def holdout_refusals(path: Path, taxonomy: Taxonomy, cache_dir: Path | None = None) -> KnownImages:
    """The images that may not be added to training data (the frozen holdout), with why: by their
    bytes, and by their look, so that a holdout photo saved again, resized or turned is refused too.

    Decoding every holdout photo for its look takes seconds (582 photos); with a `cache_dir` the looks
    are kept there by each file's sha256 (None: undecodable), in a file named by the frozen holdout's
    digest, so that they are decoded once per holdout. The bytes are read and hashed at every call,
    so a changed photo misses the cache and is decoded again; an unreadable or foreign cache file is
    ignored and written again."""
    try:
        policy = load_policy(path, taxonomy)
        cache = looks_file(policy, cache_dir)
        cached = read_looks(cache) if cache is not None else {}
        looks: dict[str, str | None] = {}
        known = KnownImages()
        for holdout, image, _ in holdout_files(policy):
            data = read_regular_file(image)
            sha256 = hashlib.sha256(data).hexdigest()
            where, name = f"{holdout.name}/{holdout.split}", policy.holdout_name
            known.by_sha256[sha256] = f"in the frozen holdout {name} ({where}): never trained on"
            look = looks[sha256] = cached[sha256] if sha256 in cached else photo_look(data, image)
            if look is not None:  # an undecodable photo is known by its bytes all the same
                why = f"a copy of {where}/{image.name} of the frozen holdout {name}: never trained on"
                known.add_look(look, why)
    except (PromotionError, TaxonomyError, OSError) as err:
        print(f"warning: holdout not checked: {err}", file=sys.stderr)
        return KnownImages()
    if cache is not None and looks != cached:
        try:
            write_atomically(cache, json.dumps({"format": LOOKS_FORMAT, "looks": looks}).encode())
        except OSError as err:
            print(f"warning: holdout looks not cached: {err}", file=sys.stderr)
    return known


def photo_look(data: bytes, image: Path) -> str | None:
    """The perceptual hash of a photo's bytes, None where they do not decode."""
    try:
        return perceptual_hash(decode_photo(data, source=str(image)).image)
    except ImageError:
        return None


def looks_file(policy: Policy, cache_dir: Path | None) -> Path | None:
    """Where the looks of the holdout's photos are cached: a file per frozen digest (entries are
    keyed by each photo's sha256, so the name only keeps holdouts apart), None without a cache."""
    if cache_dir is None:
        return None
    digest = policy.holdout_sha256 or ""
    name = digest if re.fullmatch(r"[0-9a-f]{64}", digest) else "unfrozen"
    return cache_dir / HOLDOUT_LOOKS / f"{name}.json"


def read_looks(cache: Path) -> dict[str, str | None]:
    """The cached looks (image sha256 -> perceptual hash, None: undecodable); a missing, unreadable,
    corrupt or foreign file is an empty cache, and entries that are not a look are left out."""
    try:
        stored = json.loads(cache.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict) or stored.get("format") != LOOKS_FORMAT:
        return {}
    looks = stored.get("looks")
    if not isinstance(looks, dict):
        return {}
    return {
        sha256: look
        for sha256, look in looks.items()
        if look is None or (isinstance(look, str) and PHASH_TEXT.fullmatch(look))
    }


# --- scores and the decision ----------------------------------------------------------------------

# set -> class -> {"value", "instances"}; the row CONFIRMED_ABSENT holds, per class, the detections per
# photo (lower is better) on the photos where reviews confirmed it absent, "instances" being those photos
Scores = dict[str, dict[str, dict[str, Any]]]


def holdout_scores(
    model: str | Path, policy: Policy, models_dir: Path, limit: int | None = None
) -> tuple[str, Scores]:
    """Evaluate a model on every holdout set: its version and per-class scores.

    Scores are remembered in the model's card under the holdout's digest and the model's
    version, so the current model is evaluated once per holdout, not at every promotion.
    """
    from vision.detect.backends import load_detector
    from vision.modelops.evaluate import EVAL_CONFIDENCE, evaluate

    files = find_model(model, models_dir)
    backend = "onnx" if "onnx" in files.weights else "ultralytics"
    version = model_version(files.name, files.weights[backend])
    digest = policy.holdout_sha256 or "unfrozen"
    cached = (files.card.get("holdout") or {}).get(digest) if limit is None else None
    if cached and cached.get("model") == version and cached.get("metric") == policy.metric:
        return version, cached["scores"]
    detector = load_detector(
        files.folder or model,
        backend=backend,
        models_dir=models_dir,
        taxonomy=policy.taxonomy,
        confidence=EVAL_CONFIDENCE,
    )
    scores: Scores = {}
    rule = policy.false_detections
    pooled = {name: {"photos": 0, "detections": 0} for name in (rule.classes if rule else ())}
    for holdout in policy.holdout:
        absent = holdout.absent(policy.taxonomy)
        result = evaluate(detector, holdout.data, policy.taxonomy, holdout.split, limit=limit, absent=absent)
        scores[holdout.name] = {
            name: {"value": getattr(metrics, policy.metric), "instances": metrics.instances}
            for name, metrics in result.classes.items()
        }
        for name, counts in result.false_detections.items():
            for key in pooled.get(name, {}):
                pooled[name][key] += counts[key]
    if pooled:
        scores[CONFIRMED_ABSENT] = {
            name: {"value": c["detections"] / c["photos"] if c["photos"] else None, "instances": c["photos"]}
            for name, c in pooled.items()
        }
    if files.folder is not None and limit is None:
        entry = {"model": version, "metric": policy.metric, "scores": _rounded(scores)}
        update_card(files.folder, holdout={**(files.card.get("holdout") or {}), digest: entry})
    return version, _rounded(scores)


def _rounded(scores: Scores) -> Scores:
    return {
        name: {
            cls: {
                "value": None if s["value"] is None else round(float(s["value"]), 4),
                "instances": int(s["instances"]),
            }
            for cls, s in classes.items()
        }
        for name, classes in scores.items()
    }


@dataclass(frozen=True)
class Decision:
    promote: bool
    failed: tuple[dict[str, Any], ...]  # classes worse than their tolerance allows
    judged: int  # classes compared
    reason: str

    def and_also(self, other: Decision) -> Decision:
        """Both rules must pass: the current model's and the anchor's (drift)."""
        if self.promote and other.promote:
            return Decision(True, (), self.judged, f"{self.reason}; {other.reason}")
        reasons = "; ".join(d.reason for d in (self, other) if not d.promote)
        return Decision(False, self.failed + other.failed, self.judged, reasons)


def decide(
    candidate: Scores,
    current: Scores,
    policy: Policy,
    *,
    scale: float = 1.0,
    against: str = "the current model",
) -> Decision:
    """Not worse on any judged class beyond its tolerance: a pure rule on two score tables.

    A class is judged on a set where the holdout has at least `min_instances` of it and the
    current model has a score; a candidate without a score there counts as 0. In the row
    CONFIRMED_ABSENT (false detections per photo) lower is better, a class is judged on at least
    `false_detections.min_photos` photos, and a candidate without a count there fails. `scale`
    multiplies every tolerance (the drift rule judges against the holdout's anchor model with it);
    `against` names the reference in the reason and in each failure.
    """
    failed = []
    judged = 0
    rule = policy.false_detections
    for set_name, classes in current.items():
        lower_is_better = set_name == CONFIRMED_ABSENT
        if lower_is_better and rule is None:
            continue
        for cls, now in classes.items():
            needed = rule.min_photos if lower_is_better and rule else policy.min_instances
            if now["value"] is None or now["instances"] < needed:
                continue
            judged += 1
            new = (candidate.get(set_name) or {}).get(cls) or {"value": None}
            if lower_is_better and rule:
                tolerance = rule.tolerance * scale
                value = float("inf") if new["value"] is None else float(new["value"])
                worse = value > float(now["value"]) + tolerance + 1e-9
            else:
                tolerance = policy.tolerance(cls) * scale
                value = 0.0 if new["value"] is None else float(new["value"])
                worse = value < float(now["value"]) - tolerance - 1e-9
            if worse:
                failed.append(
                    {
                        "set": set_name,
                        "class": cls,
                        "candidate": round(value, 4),
                        "current": now["value"],
                        "tolerance": round(tolerance, 6),
                        "against": against,
                    }
                )
    if failed:
        worst = ", ".join(
            f"{f['set']}/{f['class']} {f['candidate']:.3f} {'>' if f['set'] == CONFIRMED_ABSENT else '<'} "
            f"{f['current']:.3f}"
            for f in failed
        )
        return Decision(
            False, tuple(failed), judged, f"worse than {against} on {len(failed)} class(es): {worst}"
        )
    applied = "tolerances applied" if scale == 1.0 else f"{scale:g}x the tolerances"
    where = "" if against == "the current model" else f" than {against}"
    return Decision(
        True, (), judged, f"not worse{where} on any of {judged} judged class(es) ({policy.metric}, {applied})"
    )


# --- the registry file: current model and history ----------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """models/registry.yaml; every change is an atomic rewrite under an exclusive file lock."""

    models_dir: Path

    @property
    def path(self) -> Path:
        return self.models_dir / REGISTRY

    def read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"current": None, "history": []}
        data = read_yaml(self.path, PromotionError) or {}
        if not isinstance(data, dict):
            raise PromotionError(f"{self.path}: expected a mapping with 'current' and 'history'")
        return {"current": data.get("current"), "history": list(data.get("history") or [])}

    @property
    def current(self) -> str | None:
        current = self.read()["current"]
        return str(current) if current else None

    @contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """Read, let the caller change, and write back atomically; one writer at a time."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with (self.models_dir / ".registry.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            yield data
            text = REGISTRY_HEADER + yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
            temporary = self.path.with_name(f".{REGISTRY}.{os.getpid()}")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(self.path)

    def record(self, entry: dict[str, Any], current: str | None = None) -> None:
        with self.locked() as data:
            data["history"].append(entry)
            if current is not None:
                data["current"] = current

    def anchor(self, holdout_sha256: str) -> tuple[str, Scores] | None:
        """The model that was current when this holdout was first used, and its scores then.

        Judging each candidate only against the current model lets losses within tolerance add up
        over promotions; the anchor is one fixed reference per frozen holdout (not the best score so
        far: a maximum of noisy scores would be a bar no equal model clears).
        """
        for entry in self.read()["history"]:
            scores = (entry.get("scores") or {}).get("current")
            if (
                (entry.get("holdout") or {}).get("sha256") == holdout_sha256
                and entry.get("previous")
                and scores
            ):
                return str(entry["previous"]), scores
        return None

    def were_current(self) -> set[str]:
        """Every model the history made current once (rollbacks return only to these)."""
        return {str(e["model"]) for e in self.read()["history"] if e.get("action") in CURRENT_ACTIONS}

    def previous(self) -> str | None:
        """The model that was current before the current one."""
        currents = [e["model"] for e in self.read()["history"] if e.get("action") in CURRENT_ACTIONS]
        now = self.current
        for name in reversed(currents):
            if name != now:
                return str(name)
        return None


def version_of(model: str | Path, models_dir: Path, fetch: bool = True) -> str:
    files = find_model(model, models_dir, fetch=fetch)
    backend = "onnx" if "onnx" in files.weights else "ultralytics"
    return model_version(files.name, files.weights[backend])


def promote(
    candidate: str,
    *,
    registry: Registry,
    policy: Policy,
    at: datetime,
    force: str | None = None,
    limit: int | None = None,
) -> Decision:
    """Judge `candidate` against the current model on the holdout; make it current if not worse.

    `force` (a reason) makes it current whatever the scores say; the scores are still recorded.
    `limit` (the first N images of each holdout set) is a quick look, not a decision: the verdict
    is returned and nothing is recorded, neither in the registry's history nor in a card.
    """
    if force is not None and limit is not None:
        raise PromotionError("a forced promotion is a decision: judge it on the whole holdout (no limit)")
    folder = registry.models_dir / check_model_name(candidate)
    if not folder.is_dir():
        raise PromotionError(f"no model folder {folder}")
    current = registry.current
    if current == candidate:
        raise PromotionError(f"{candidate} is already the current model")
    digest = check_holdout(policy)
    version, new_scores = holdout_scores(folder, policy, registry.models_dir, limit)
    old_scores: Scores = {}
    current_version = None
    if current is None:
        decision = Decision(True, (), 0, "no current model to compare with")
    else:
        current_version, old_scores = holdout_scores(
            registry.models_dir / current, policy, registry.models_dir, limit
        )
        decision = decide(new_scores, old_scores, policy)
    anchor = registry.anchor(digest) if policy.drift is not None and limit is None else None
    if anchor is not None and anchor[0] != current:
        against = f"the holdout's anchor {anchor[0]}"
        decision = decision.and_also(
            decide(new_scores, anchor[1], policy, scale=policy.drift or 0.0, against=against)
        )
    if limit is not None:
        return decision
    promoted = decision.promote or force is not None
    action = "promote" if decision.promote else ("force" if force else "refuse")
    record = {
        "at": at.isoformat(),
        "action": action,
        "model": candidate,
        "version": version,
        "previous": current,
        "previous_version": current_version,
        "reason": force if action == "force" else decision.reason,
        "holdout": {"name": policy.holdout_name, "sha256": digest, "metric": policy.metric},
        **({"anchor": {"model": anchor[0], "drift": policy.drift}} if anchor is not None else {}),
        "scores": {"candidate": new_scores, "current": old_scores},
        "failed": list(decision.failed),
    }
    with registry.locked() as data:
        # judged against `current`: if another promotion or rollback landed meanwhile, recording
        # this decision would make the candidate current over a model it was never compared with
        if data["current"] != current:
            raise PromotionError(
                f"the current model changed from {current} to {data['current']} while {candidate} was "
                f"judged: nothing recorded; promote {candidate} again to judge it against {data['current']}"
            )
        update_card(folder, promotion={k: v for k, v in record.items() if k not in ("model",)})
        data["history"].append(record)
        if promoted:
            data["current"] = candidate
    return decision


def rollback(*, registry: Registry, at: datetime, to: str | None = None, reason: str = "") -> str:
    """Make the previous current model (or `to`) current again; recorded in the history."""
    current = registry.current
    target = to or registry.previous()
    if target is None:
        raise PromotionError("no earlier model to roll back to")
    if target == current:
        raise PromotionError(f"{target} is already the current model")
    try:
        folder = registry.models_dir / check_model_name(target)
        if not folder.is_dir():
            raise PromotionError(f"no model folder {folder}")
        # a refused or never judged candidate keeps its weights until `prune`: not a rollback's
        if target not in registry.were_current():
            raise PromotionError(
                f"{target} was never the current model: a rollback returns to an earlier one; judge it "
                f"with `streetorder models promote {target}` (or --force REASON)"
            )
        version = version_of(folder, registry.models_dir)  # fetches weights given by url
    except ModelError as err:
        raise PromotionError(f"cannot roll back to {target}: {err}") from err
    registry.record(
        {
            "at": at.isoformat(),
            "action": "rollback",
            "model": target,
            "version": version,
            "previous": current,
            "reason": reason or f"rolled back from {current}",
        },
        current=target,
    )
    return target


# --- streetorder models -----------------------------------------------------------------------------


def natural_order(name: str) -> tuple[tuple[int, int | str], ...]:
    """street-v2 before street-v10: numbers in a name compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


# a model's last decision as the list says it, by the history entry's action (a rollback: below)
DECISION_WORDS = {"initial": "initial", "promote": "promoted", "force": "forced", "refuse": "refused"}


def last_decisions(history: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Each model's last decision and its time, from the registry's history: a rollback is the
    decision of both models it concerns ("rolled back" for the one it left, "current again" for its
    target). The card's own promotion said "promote" of a model rolled back since."""
    last: dict[str, tuple[str, str]] = {}
    for entry in history:
        action, at = str(entry.get("action")), str(entry.get("at") or "")
        if action == "rollback":
            if entry.get("previous"):
                last[str(entry["previous"])] = ("rolled back", at)
            last[str(entry.get("model"))] = ("current again", at)
        elif action in DECISION_WORDS:
            last[str(entry.get("model"))] = (DECISION_WORDS[action], at)
    return last


def list_models(registry: Registry) -> list[dict[str, Any]]:
    """Every model folder whose weights are here or recorded in its card (nothing is fetched), with
    its last decision (`last_decisions`; a card's own promotion where the history has none)."""
    rows = []
    recorded_registry = registry.read()
    current, decisions = recorded_registry["current"], last_decisions(recorded_registry["history"])
    for folder in sorted(
        (p for p in registry.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_order(p.name),
    ):
        try:
            card = read_card(folder)
            recorded = recorded_weights(card, folder)
        except ModelError:
            continue
        try:
            version, weights = version_of(folder, registry.models_dir, fetch=False), "here"
        except ModelError:
            main = recorded.get(WEIGHTS["onnx"]) or recorded.get(WEIGHTS["ultralytics"])
            if main is None:
                continue
            version = f"{folder.name}@{main.sha256[:12]}"
            weights = "url" if main.url else (f"git {main.git[:12]}" if main.git else "not kept")
        promotion = card.get("promotion") or {}
        action = str(promotion.get("action") or "")
        decision, decided_at = decisions.get(
            folder.name, (DECISION_WORDS.get(action, action), str(promotion.get("at") or ""))
        )
        rows.append(
            {
                "name": folder.name,
                "current": folder.name == current,
                "version": version,
                "weights": weights,
                "status": card.get("status"),
                "decision": decision,
                "decided_at": decided_at,
            }
        )
    return rows


# --- only the current model and the one before it keep their weights in the tree -------------------


def retired_models(registry: Registry) -> list[str]:
    """Models that were current once and are neither the current one nor the one before it."""
    return sorted(registry.were_current() - {registry.current, registry.previous()})


def _git(folder: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _committed(path: Path, commit: str) -> bool:
    """Whether `commit` holds this file, at this path, with exactly these bytes."""
    held = _git(path.parent, "rev-parse", f"{commit}:./{path.name}")
    return held is not None and held == _git(path.parent, "hash-object", path.name)


def prune(registry: Registry, commit: str = "HEAD") -> tuple[list[Path], list[Path]]:
    """Remove the weights of retired models from the tree: each file only when `commit` holds it
    byte for byte, recorded in the card as `weights.<file>.git` (rollback tells how to restore it).

    Returns the files removed and the weights files left because the commit does not hold them.
    """
    full = _git(registry.models_dir, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if full is None:
        raise PromotionError(
            f"{registry.models_dir}: '{commit}' is not a commit of a git checkout holding the models; "
            "weights leave the tree only when a commit keeps them"
        )
    removed: list[Path] = []
    left: list[Path] = []
    for name in retired_models(registry):
        folder = registry.models_dir / name
        files = sorted(p for p in folder.glob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        held = [p for p in files if _committed(p, full)]
        left += [p for p in files if p not in held]
        if not held:
            continue
        recorded = recorded_weights(read_card(folder), folder)
        entries = {
            p.name: {
                **(recorded[p.name].model_dump(exclude_none=True) if p.name in recorded else {}),
                "sha256": file_sha256(p),
                "git": full,
            }
            for p in held
        }
        update_card(folder, weights=entries)
        for path in held:
            path.unlink()
        removed += held
    return removed, left
