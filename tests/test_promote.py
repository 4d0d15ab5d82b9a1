"""Promotion on a frozen holdout, the registry's history, rollback, and the retraining job.

The rule is a pure function checked on a table; the promotions below run real evaluations of
real models on real garbage photos: the registry's current model (whichever it is) against a
model trained for one epoch on synthetic rectangles, promoted over it (not worse) and refused in
its place (worse: nothing changes).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml
from configured import MODELS, TAXONOMY
from synthetic import SOURCES, draw, random_boxes, tiny_model, write_mix, write_set

from serve.cli.main import main
from vision.data.annotations.coords import to_percent
from vision.data.annotations.dataset import Dataset
from vision.data.annotations.inbox import record_annotation
from vision.data.annotations.label_config import label_config
from vision.detect.backends import load_detector
from vision.detect.registry import CURRENT, ModelError, find_model, read_card, write_card
from vision.modelops.checkpoints import load_checkpoint
from vision.modelops.promote import (
    CONFIRMED_ABSENT,
    FalseDetectionRule,
    HoldoutSet,
    Policy,
    PromotionError,
    Registry,
    check_holdout,
    decide,
    holdout_digest,
    holdout_scores,
    load_policy,
    promote,
    rollback,
)
from vision.modelops.retrain import JobError, list_jobs, queue_job, training_mix

AT = datetime(2025, 10, 2, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]
GARBAGE_VAL = ROOT.parent / "shared" / "datasets" / "garbage-cn"


def policy(**changes: Any) -> Policy:
    base = Policy(
        metric="ap50",
        default_tolerance=0.02,
        tolerances={"truck": 0.1},
        min_instances=5,
        holdout_name="h",
        holdout=(HoldoutSet("set", Path("data.yaml"), "val"),),
        holdout_sha256=None,
        taxonomy=TAXONOMY,
    )
    return Policy(**{**base.__dict__, **changes})


def scores(**classes: tuple[float | None, int]) -> dict[str, dict[str, dict[str, Any]]]:
    return {"set": {name: {"value": value, "instances": count} for name, (value, count) in classes.items()}}


@pytest.mark.parametrize(
    ("candidate", "current", "promoted", "failed"),
    [
        (scores(car=(0.50, 50)), scores(car=(0.50, 50)), True, []),  # equal is not worse
        (scores(car=(0.49, 50)), scores(car=(0.50, 50)), True, []),  # within 0.02
        (scores(car=(0.47, 50)), scores(car=(0.50, 50)), False, ["car"]),
        (
            scores(car=(0.90, 50), bus=(0.10, 20)),
            scores(car=(0.50, 50), bus=(0.30, 20)),
            False,
            ["bus"],
        ),  # no averaging
        (scores(truck=(0.45, 30)), scores(truck=(0.50, 30)), True, []),  # its own tolerance, 0.1
        (scores(car=(0.10, 3)), scores(car=(0.90, 3)), True, []),  # 3 instances: reported, not judged
        (scores(), scores(car=(0.30, 50)), False, ["car"]),  # no score at all counts as 0
        (scores(car=(0.20, 50)), scores(car=(None, 0)), True, []),  # nothing to compare with
    ],
)
def test_not_worse_on_any_judged_class_beyond_its_tolerance(
    candidate: Any, current: Any, promoted: bool, failed: list[str]
) -> None:
    decision = decide(candidate, current, policy())
    assert decision.promote is promoted
    assert [f["class"] for f in decision.failed] == failed
    assert all(f["candidate"] < f["current"] - f["tolerance"] for f in decision.failed)


@pytest.mark.parametrize(
    ("car", "truck", "failed"),
    [
        (0.47, 0.50, []),  # 0.03 below the anchor: within twice 0.02
        (0.45, 0.50, [("car", 0.04)]),
        (0.50, 0.35, []),  # truck's own tolerance, 0.1, doubled
        (0.50, 0.25, [("truck", 0.2)]),
    ],
)
def test_the_drift_rule_scales_every_tolerance_and_names_its_reference(
    car: float, truck: float, failed: list[tuple[str, float]]
) -> None:
    anchor = scores(car=(0.50, 50), truck=(0.50, 30))
    against = "the holdout's anchor a"
    decision = decide(scores(car=(car, 50), truck=(truck, 30)), anchor, policy(), scale=2.0, against=against)
    assert decision.promote is not failed, decision.reason
    assert [(f["class"], f["tolerance"]) for f in decision.failed] == failed
    assert all(f["against"] == against for f in decision.failed) and against in decision.reason


def test_small_losses_within_tolerance_cannot_add_up_over_promotions() -> None:
    """Each step within 0.02 of the model before it; the anchor rule refuses once the sum passes 0.04."""
    pol = policy(drift=2.0)
    anchor = scores(car=(0.50, 50))
    steps = [0.49, 0.48, 0.47, 0.46, 0.45]
    verdicts = []
    for before, after in zip([0.50, *steps], steps, strict=False):
        against_current = decide(scores(car=(after, 50)), scores(car=(before, 50)), pol)
        drift = decide(scores(car=(after, 50)), anchor, pol, scale=2.0, against="the anchor")
        verdicts.append(against_current.and_also(drift).promote)
    assert verdicts == [True, True, True, True, False]


RULE = FalseDetectionRule(("garbage", "flyer"), tolerance=0.05, min_photos=10)


def absent(**classes: tuple[float | None, int]) -> dict[str, dict[str, dict[str, Any]]]:
    """A score table with only the row of false detections per photo on confirmed-absent photos."""
    return {CONFIRMED_ABSENT: scores(**classes)["set"]}


@pytest.mark.parametrize(
    ("candidate", "current", "rule", "promoted", "failed", "judged"),
    [
        (absent(garbage=(0.10, 40)), absent(garbage=(0.90, 40)), RULE, True, [], 2),  # fewer false boxes
        (absent(garbage=(0.94, 40)), absent(garbage=(0.90, 40)), RULE, True, [], 2),  # within 0.05 a photo
        (absent(garbage=(1.00, 40)), absent(garbage=(0.90, 40)), RULE, False, ["garbage"], 2),
        (absent(), absent(garbage=(0.90, 40)), RULE, False, ["garbage"], 2),  # not counted: fails
        (absent(flyer=(3.0, 3)), absent(flyer=(0.0, 3)), RULE, True, [], 1),  # 3 photos: reported only
        (absent(garbage=(5.0, 40)), absent(garbage=(0.0, 40)), None, True, [], 1),  # no rule configured
    ],
)
def test_no_more_false_detections_per_photo_where_reviews_confirmed_a_class_absent(
    candidate: Any,
    current: Any,
    rule: FalseDetectionRule | None,
    promoted: bool,
    failed: list[str],
    judged: int,
) -> None:
    decision = decide(
        {**scores(car=(0.5, 50)), **candidate},
        {**scores(car=(0.5, 50)), **current},
        policy(false_detections=rule),
    )
    assert decision.promote is promoted, decision.reason
    assert [f["class"] for f in decision.failed] == failed
    assert decision.judged == judged


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"classes": "garbage"}, "false_detections.classes: Input should be a valid list"),
        ({"classes": ["litter"], "tolerance": 0.1, "min_photos": 5}, "not taxonomy classes: ['litter']"),
        ({"classes": ["garbage"], "tolerance": -1, "min_photos": 5}, "tolerance"),
        ({"classes": ["garbage"], "tolerance": 0.1, "min_photos": 0}, "min_photos"),
    ],
)
def test_a_broken_false_detection_rule_is_named(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    config = tmp_path / "promotion.yaml"
    config.write_text(yaml.safe_dump({"false_detections": spec, "holdout": {"sets": [{"data": "d.yaml"}]}}))
    with pytest.raises(PromotionError, match=re.escape(message)):
        load_policy(config, taxonomy=TAXONOMY)


TRAFFIC = GARBAGE_VAL.parent / "traffic-cams"
FRAMES = ("10260070026111110.jpg", "10260070026111111.jpg", "10260070026111112.jpg", "A10.jpg")


def traffic_holdout(root: Path, reviews: Path) -> Path:
    """A frozen holdout of four traffic-cams val frames, with the committed review decisions on them."""
    for name in FRAMES:
        for folder, file in (("images", name), ("labels", name.replace(".jpg", ".txt"))):
            (root / folder / "val").mkdir(parents=True, exist_ok=True)
            (root / folder / "val" / file).symlink_to(TRAFFIC / folder / "val" / file)
    (root / "data.yaml").write_text((TRAFFIC / "data.yaml").read_text())
    config = root / "promotion.yaml"
    rule = {"classes": ["garbage", "garbage_bin"], "tolerance": 0.0, "min_photos": 1}
    sets = [{"name": "traffic-cams", "data": "data.yaml", "reviews": str(reviews)}]
    config.write_text(yaml.safe_dump({"false_detections": rule, "holdout": {"name": "t", "sets": sets}}))
    return config


@pytest.mark.skipif(not TRAFFIC.is_dir(), reason="../shared/datasets is not beside the checkout")
def test_the_holdout_counts_false_detections_on_confirmed_absent_photos_and_pins_their_decisions(
    tmp_path: Path,
) -> None:
    """Reviews confirmed garbage absent on three night frames (street-v10 boxed each whole as
    garbage) and bins absent on A10 (it took a car for one): the current model's detections of
    those classes there are counted, per photo, and nowhere else."""
    shipped = find_model(CURRENT, models_dir=MODELS)
    model = tmp_path / "models" / "shipped"
    model.mkdir(parents=True)
    shutil.copy(shipped.weights_for("onnx"), model / "model.onnx")
    write_card(model, {k: v for k, v in shipped.card.items() if k not in ("holdout", "promotion")})
    reviews = tmp_path / "traffic-cams.jsonl"
    shutil.copy(ROOT / "datasets" / "reviews" / "traffic-cams.jsonl", reviews)
    policy_ = load_policy(traffic_holdout(tmp_path / "holdout", reviews), taxonomy=TAXONOMY)
    digest, images = holdout_digest(policy_)
    assert len(images) == 4
    _, table = holdout_scores(model, dataclasses.replace(policy_, holdout_sha256=digest), models_dir=MODELS)
    detector = load_detector(model, confidence=0.001, models_dir=MODELS, taxonomy=TAXONOMY)
    expected = {}
    for cls, photos in (
        ("garbage", FRAMES[:3]),
        ("garbage_bin", ("A10.jpg",)),
    ):  # as the review says
        floor = TAXONOMY.classes[TAXONOMY.names.index(cls)].min_confidence
        found = [detector(cv2.imread(str(TRAFFIC / "images" / "val" / p))) for p in photos]
        count = sum(
            int(((d.class_id == TAXONOMY.names.index(cls)) & (d.confidence >= floor)).sum()) for d in found
        )
        expected[cls] = {"value": round(count / len(photos), 4), "instances": len(photos)}
    assert table[CONFIRMED_ABSENT] == expected

    rows = [json.loads(line) for line in reviews.read_text().splitlines()]
    train = next(r for r in rows if r["split"] == "train")
    train["decision"] = "unsure"  # a second look at a train photo leaves the holdout as frozen
    reviews.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert holdout_digest(policy_)[0] == digest
    frame = next(r for r in rows if r["image"] == FRAMES[0])
    frame["decision"] = "unsure"  # one at a holdout photo changes it
    reviews.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert holdout_digest(policy_)[0] != digest


# --- real models on a small frozen holdout --------------------------------------------------------


@pytest.fixture(scope="module")
def holdout_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A holdout of 12 garbage-cn validation photos (symlinked, labels copied), frozen in a config."""
    if not (GARBAGE_VAL / "images" / "val").is_dir():
        pytest.skip(f"{GARBAGE_VAL} not found (../shared beside the project)")
    root = tmp_path_factory.mktemp("holdout")
    for image in sorted((GARBAGE_VAL / "images" / "val").glob("*.jpg"))[:12]:
        (root / "images" / "val").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
        (root / "images" / "val" / image.name).symlink_to(image)
        label = GARBAGE_VAL / "labels" / "val" / f"{image.stem}.txt"
        shutil.copy(label, root / "labels" / "val" / label.name)
    shutil.copy(GARBAGE_VAL / "data.yaml", root / "data.yaml")
    text = (GARBAGE_VAL / "data.yaml").read_text()
    (root / "data.yaml").write_text(text.replace("train: images/train", "train: images/val"))
    config = root / "promotion.yaml"
    spec = {
        "metric": "ap50",
        "tolerance": {"default": 0.02},
        "min_instances": 3,
        "holdout": {
            "name": "garbage-12",
            "sets": [{"name": "garbage-cn", "data": "data.yaml", "split": "val"}],
        },
    }
    config.write_text(yaml.safe_dump(spec))
    digest, images = holdout_digest(load_policy(config, taxonomy=TAXONOMY))
    assert len(images) == 12
    spec["holdout"]["sha256"] = digest
    config.write_text(yaml.safe_dump(spec))
    return config


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """models/ with `tiny` (current; tests/synthetic.py) and `shipped`: the ONNX file and card of the
    registry's current model, which finds real garbage (its cached holdout scores left out)."""
    shipped = find_model(CURRENT, models_dir=MODELS)
    folder = tmp_path / "models"
    tiny_model(folder)
    (folder / "shipped").mkdir()
    write_card(
        folder / "shipped", {k: v for k, v in shipped.card.items() if k not in ("holdout", "promotion")}
    )
    shutil.copy(shipped.weights_for("onnx"), folder / "shipped" / "model.onnx")
    Registry(folder).record({"at": AT.isoformat(), "action": "initial", "model": "tiny"}, "tiny")
    return folder


def test_a_model_not_worse_on_the_holdout_is_promoted_and_can_be_rolled_back(
    models: Path, holdout_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = Registry(models)
    decision = promote(
        "shipped", registry=registry, policy=load_policy(holdout_config, taxonomy=TAXONOMY), at=AT
    )
    assert decision.promote and decision.judged >= 2, decision.reason
    assert registry.current == "shipped"
    entry = registry.read()["history"][-1]
    assert entry["action"] == "promote" and entry["previous"] == "tiny"
    assert set(entry["scores"]["candidate"]["garbage-cn"]) == {"garbage", "garbage_bin", "overflow"}
    found = {
        side: sum(s["value"] or 0 for s in entry["scores"][side]["garbage-cn"].values())
        for side in ("candidate", "current")
    }
    assert found["candidate"] > found["current"], found  # a real detector beats one epoch on rectangles
    assert entry["holdout"] == {
        "name": "garbage-12",
        "sha256": load_policy(holdout_config, taxonomy=TAXONOMY).holdout_sha256,
        "metric": "ap50",
    }
    card = read_card(models / "shipped")
    assert card["promotion"]["action"] == "promote" and card["promotion"]["scores"] == entry["scores"]
    # the current model's scores were cached in its card under the holdout's digest
    assert (
        read_card(models / "tiny")["holdout"][entry["holdout"]["sha256"]]["scores"]
        == entry["scores"]["current"]
    )
    assert rollback(registry=registry, at=AT, reason="test") == "tiny"
    assert registry.current == "tiny" and registry.read()["history"][-1]["action"] == "rollback"
    assert main(["models", "--models-dir", str(models), "list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["name", "version", "weights", "last", "decision", "status"]
    listed = {line[2:].split()[0]: line[0] for line in rows}
    assert listed == {"tiny": "*", "shipped": " "}
    # the rolled-back model's card still says "promote": the list reads the registry's history
    said = {line[2:].split()[0]: line for line in rows}
    assert f"rolled back {AT:%Y-%m-%d %H:%M} UTC" in said["shipped"], said
    assert f"current again {AT:%Y-%m-%d %H:%M} UTC" in said["tiny"], said
    with pytest.raises(PromotionError, match="already the current model"):
        promote("tiny", registry=registry, policy=load_policy(holdout_config, taxonomy=TAXONOMY), at=AT)
    (models.parent / "outside").mkdir(exist_ok=True)  # a folder beside models/, not a model of it
    with pytest.raises(ModelError, match=re.escape("model name '../outside'")):
        promote("../outside", registry=registry, policy=load_policy(holdout_config, taxonomy=TAXONOMY), at=AT)
    with pytest.raises(PromotionError, match=re.escape("cannot roll back to ../outside: model name")):
        rollback(registry=registry, at=AT, to="../outside")


def test_models_list_shows_a_long_status_whole_in_aligned_columns(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A status is a sentence at times; the list cut it at 12 characters ("provisional ")."""
    status = "provisional (epoch 16 of a CPU run from scratch; street-v2 continues it)"
    statuses = {"shipped": status, "tiny": "final"}
    for name, said in statuses.items():
        write_card(models / name, {**read_card(models / name), "status": said})
    assert main(["models", "--models-dir", str(models), "list"]) == 0
    lines = {line[2:].split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert status in lines["shipped"], lines
    starts = {line.index(f" {statuses[name]}") for name, line in lines.items()}
    assert len(starts) == 1, lines  # the status column starts at one place in every row


def test_a_rollback_returns_only_to_a_model_that_was_current(models: Path) -> None:
    """`rollback --to` a candidate never promoted (refused ones keep their weights until `prune`)
    would make it current unjudged: a promotion without the holdout."""
    registry = Registry(models)
    before = registry.read()
    with pytest.raises(
        PromotionError, match=r"shipped was never the current model: .* models promote shipped"
    ):
        rollback(registry=registry, at=AT, to="shipped")
    # a mistyped name is named as no model, not sent to `promote` (which would say so in its turn)
    with pytest.raises(PromotionError, match=r"no model folder .*shiped$"):
        rollback(registry=registry, at=AT, to="shiped")
    assert registry.read() == before


def test_a_promotion_judged_against_a_model_no_longer_current_is_not_recorded(
    models: Path, holdout_config: Path
) -> None:
    """Judging takes minutes (a retraining job: hours); a rollback that lands meanwhile must not be
    overwritten by a candidate that was compared with the model it replaced."""

    class RolledBackWhileJudging(Registry):
        @property
        def current(self) -> str | None:
            judged = super().current
            if judged == "tiny":  # another process writes the registry after promote() read it
                Registry(self.models_dir).record(
                    {"at": AT.isoformat(), "action": "rollback", "model": "tiny-old"}, current="tiny-old"
                )
            return judged

    registry = RolledBackWhileJudging(models)
    before = len(registry.read()["history"])
    with pytest.raises(PromotionError, match="changed from tiny to tiny-old while shipped was judged"):
        promote("shipped", registry=registry, policy=load_policy(holdout_config, taxonomy=TAXONOMY), at=AT)
    data = Registry(models).read()
    assert data["current"] == "tiny-old" and len(data["history"]) == before + 1  # the rollback stands
    assert "promotion" not in read_card(models / "shipped")


def test_a_candidate_is_also_judged_against_the_model_current_when_the_holdout_was_first_used(
    models: Path, holdout_config: Path
) -> None:
    """The anchor is the first registry entry on this holdout's digest (here one whose model scored
    1.0 on every class); a candidate better than the current model but far below it is refused."""
    pol = dataclasses.replace(load_policy(holdout_config, taxonomy=TAXONOMY), drift=2.0)
    registry = Registry(models)
    high = {
        "garbage-cn": {c: {"value": 1.0, "instances": 50} for c in ("garbage", "garbage_bin", "overflow")}
    }
    other_holdout = {"name": "old", "sha256": "0" * 64, "metric": "ap50"}
    this_holdout = {**other_holdout, "sha256": pol.holdout_sha256}
    for name, holdout in (("older", other_holdout), ("anchor-model", this_holdout), ("later", this_holdout)):
        registry.record(
            {
                "at": AT.isoformat(),
                "action": "refuse",
                "model": "x",
                "previous": name,
                "holdout": holdout,
                "scores": {"candidate": {}, "current": high},
            }
        )
    assert registry.anchor(str(pol.holdout_sha256)) == ("anchor-model", high)
    decision = promote("shipped", registry=registry, policy=pol, at=AT)
    entry = registry.read()["history"][-1]
    below = {c for c, v in entry["scores"]["candidate"]["garbage-cn"].items() if v["value"] < 1.0 - 0.04}
    assert below, entry["scores"]["candidate"]  # a real model on 12 photos: not perfect on every class
    assert not decision.promote and registry.current == "tiny"
    assert {f["class"] for f in decision.failed} == below
    assert {f["against"] for f in decision.failed} == {"the holdout's anchor anchor-model"}
    assert entry["action"] == "refuse" and entry["anchor"] == {"model": "anchor-model", "drift": 2.0}
    assert "the holdout's anchor anchor-model" in entry["reason"]


def test_a_quick_look_is_not_a_decision(
    models: Path, holdout_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 29: `promote --limit` was written into the history as a decision; now it only says."""
    registry = Registry(models)
    before = registry.read()
    argv = ["models", "--models-dir", str(models), "--config", str(holdout_config), "promote"]
    code = main([*argv, "shipped", "--limit", "3"])
    said = capsys.readouterr().out
    assert "quick look on the first 3 holdout images per set, not recorded" in said
    assert code == (0 if "would be promoted" in said else 1)
    assert registry.read() == before and "promotion" not in read_card(models / "shipped")
    assert "holdout" not in read_card(models / "tiny")  # partial scores are not cached either
    with pytest.raises(SystemExit) as usage:
        main([*argv, "shipped", "--limit", "3", "--force", "why not"])
    assert usage.value.code == 2 and registry.read() == before


def test_a_changed_holdout_stops_promotion(models: Path, holdout_config: Path, tmp_path: Path) -> None:
    copy = tmp_path / "holdout"
    shutil.copytree(holdout_config.parent, copy, symlinks=True)
    label = sorted((copy / "labels" / "val").glob("*.txt"))[0]
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n")  # one box more in one label file
    with pytest.raises(PromotionError, match="the holdout changed"):
        check_holdout(load_policy(copy / "promotion.yaml", taxonomy=TAXONOMY))
    spec = yaml.safe_load((copy / "promotion.yaml").read_text())
    spec["holdout"]["sha256"] = None
    (copy / "promotion.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(PromotionError, match=r"freeze the holdout by setting it to [0-9a-f]{64}"):
        promote(
            "shipped",
            registry=Registry(models),
            policy=load_policy(copy / "promotion.yaml", taxonomy=TAXONOMY),
            at=AT,
        )
    assert Registry(models).current == "tiny"


@pytest.mark.slow
def test_a_worse_model_is_refused_with_both_scores_recorded(models: Path, holdout_config: Path) -> None:
    """A model trained one epoch on synthetic rectangles against the shipped one, both really evaluated."""
    registry = Registry(models)
    registry.record({"at": AT.isoformat(), "action": "force", "model": "shipped"}, current="shipped")
    argv = ["models", "--models-dir", str(models), "--config", str(holdout_config)]
    assert main([*argv, "promote", "tiny"]) == 1
    assert registry.current == "shipped"
    entry = registry.read()["history"][-1]
    assert entry["action"] == "refuse" and entry["model"] == "tiny" and entry["failed"]
    failed = {f["class"] for f in entry["failed"]}
    current = entry["scores"]["current"]["garbage-cn"]
    assert failed == {
        c for c, s in current.items() if s["value"] and s["instances"] >= 3 and s["value"] > 0.02
    }
    card = read_card(models / "tiny")["promotion"]
    assert card["action"] == "refuse" and card["scores"] == entry["scores"] and card["previous"] == "shipped"
    assert main([*argv, "promote", "tiny", "--force", "the bureau asked for it"]) == 0
    assert (
        registry.current == "tiny" and registry.read()["history"][-1]["reason"] == "the bureau asked for it"
    )
    assert main([*argv, "rollback"]) == 0 and registry.current == "shipped"


# --- the retraining job -------------------------------------------------------------------------------


def test_the_retraining_mix_keeps_the_base_mix_sampling(tmp_path: Path) -> None:
    """A base mix that subsamples or oversamples a source trains the same way inside a job."""
    mix = write_mix(tmp_path / "base")
    spec = yaml.safe_load(mix.read_text())
    spec["sources"][0].update({"train_fraction": 0.5, "oversample": {"garbage": 2}})
    mix.write_text(yaml.safe_dump(spec))
    bureau = tmp_path / "bureau.yaml"
    job_mix = training_mix(
        {"base_mix": mix.name}, mix, [("bureau", bureau)], tmp_path / "work", taxonomy=TAXONOMY
    )
    sources = {s["name"]: s for s in yaml.safe_load(job_mix.read_text())["sources"]}
    assert sources["bins"]["train_fraction"] == 0.5 and sources["bins"]["oversample"] == {"garbage": 2}
    assert sources["roads"]["train_fraction"] == 1.0 and sources["roads"]["oversample"] == {}
    assert yaml.safe_load(Path(sources["bins"]["data"]).read_text()).keys() == {"train", "names"}
    assert sources["bureau"] == {"name": "bureau", "data": str(bureau)}


def test_a_base_mix_source_not_made_on_this_machine_fails_the_job_saying_how_to_make_it(
    tmp_path: Path,
) -> None:
    mix = write_mix(tmp_path / "base")
    spec = yaml.safe_load(mix.read_text())
    spec["sources"].append({"name": "flyers-v1", "data": str(tmp_path / "cache" / "flyers-v1" / "data.yaml")})
    mix.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        JobError, match=r"flyers-v1/data\.yaml.*made by the command in its mix file's comments"
    ):
        training_mix({"base_mix": mix.name}, mix, [], tmp_path / "work", taxonomy=TAXONOMY)


def test_the_shipped_retraining_recipe_is_the_current_models_reviewed_mix_fine_tuned_and_averaged() -> None:
    """With the first mix (no reviewed negatives, bicycles or flyers) a job's candidate failed the
    holdout's false-detection rule whatever the bureau annotated."""
    policy = load_policy(ROOT / "configs" / "promotion.yaml", TAXONOMY)
    current = read_card(MODELS / Registry(MODELS).current)  # type: ignore[operator]
    made_on = Path(current["training"]["settings"]["data"]).name
    assert Path(policy.retrain["base_mix"]).name == made_on
    assert policy.retrain["lr0"] and policy.retrain["average_with_start"]


@pytest.mark.slow
def test_a_queued_job_imports_annotations_retrains_from_the_current_model_and_decides(
    tmp_path: Path, cli_cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Webhook inbox -> job -> dataset version -> 1 epoch from the current (tiny) model -> judged on
    a frozen synthetic holdout -> card and history; the decision agrees with the recorded scores."""
    models = tmp_path / "models"
    tiny_model(models)
    Registry(models).record({"at": AT.isoformat(), "action": "initial", "model": "tiny"}, current="tiny")
    mix = write_mix(tmp_path / "base", size=64, train=4, val=1)
    holdout = write_set(
        tmp_path / "holdout",
        SOURCES["bins"]["names"],
        {"val": [random_boxes(np.random.default_rng(5), 64, ["garbage", "overflow"], 2) for _ in range(4)]},
        64,
    )
    config = tmp_path / "promotion.yaml"
    spec: dict[str, Any] = {
        "metric": "ap50",
        "tolerance": {"default": 0.05},
        "min_instances": 1,
        "holdout": {"name": "synthetic", "sets": [{"data": str(holdout), "split": "val"}]},
        "retrain": {
            "base_mix": str(mix),
            "datasets": ["bureau"],
            "epochs": 1,
            "batch": 4,
            "workers": 0,
            "imgsz": 64,
            "lr0": 0.001,
            "average_with_start": True,
        },
    }
    config.write_text(yaml.safe_dump(spec))
    spec["holdout"]["sha256"] = holdout_digest(load_policy(config, taxonomy=TAXONOMY))[0]
    config.write_text(yaml.safe_dump(spec))
    annotations = tmp_path / "annotations"
    rng = np.random.default_rng(7)
    tasks = 12  # enough that one goes to val (one in 10): training refuses a set without val images
    for task_id in range(tasks):  # what Label Studio's webhook left in the inbox
        boxes = random_boxes(rng, 64, ["garbage", "car"], 2)
        path = tmp_path / "files" / f"{task_id}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), draw(64, boxes, seed=100 + task_id))
        result = [
            {
                "type": "rectanglelabels",
                "from_name": "label",
                "to_name": "image",
                "original_width": 64,
                "original_height": 64,
                "value": {**to_percent(b.xyxy, 64, 64), "rotation": 0, "rectanglelabels": [b.name]},
            }
            for b in boxes
        ]
        record_annotation(
            annotations,
            3,
            {"id": task_id, "data": {"image": f"/data/local-files/?d={task_id}.png"}},
            {"id": 50 + task_id, "result": result},
            label_config=label_config(taxonomy=TAXONOMY),  # the project's, as the webhook keeps it
        )
    record_annotation(  # its photo is gone: refused at the import, left in the inbox for a person
        annotations,
        3,
        {"id": 99, "data": {"image": "/data/local-files/?d=gone.png"}},
        {"id": 199, "result": []},
        label_config=label_config(taxonomy=TAXONOMY),
    )
    queue_job(annotations, "START_TRAINING from Label Studio project 3", AT, project=3)
    code = main(
        [
            "models",
            "--models-dir",
            str(models),
            "--config",
            str(config),
            "retrain",
            "--annotations-dir",
            str(annotations),
            "--files-root",
            str(tmp_path / "files"),
            "--datasets-dir",
            str(tmp_path / "datasets"),
            "--work-dir",
            str(tmp_path / "work"),
            "--runs-dir",
            str(tmp_path / "runs"),
        ]
    )
    [job] = list_jobs(annotations)
    assert job.state == "done", job.body.get("error")
    verdict = "promoted" if job.body["promoted"] else "refused"
    [problem] = job.body["imported"]["problems"]
    assert "(id 99)" in problem and "gone.png" in problem
    said = (
        f"job {job.id}: done: tiny-r1 {verdict}: {job.body['reason']}; 1 annotation problem(s), left in "
        f"the inbox: {problem} ({job.path})\n"
    )
    assert capsys.readouterr().out.endswith(said)
    assert (cli_cache_dir / "holdout-looks" / f"{spec['holdout']['sha256']}.json").is_file()
    assert job.body["imported"]["added"] == tasks and job.body["model"] == "tiny-r1"
    assert [p.name for p in (annotations / "inbox").glob("*.json")] == ["3-99.json"]  # the rest: done/<job>/
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    assert dataset.version == 1 and len(dataset.images) == tasks
    assert "val" in {dataset.split(sha) for sha in dataset.images}
    card = read_card(models / "tiny-r1")
    assert card["retrained_from"]["model"] == "tiny" and card["retrained_from"]["datasets"] == {"bureau": 1}
    assert card["retrained_from"]["averaged_with_start"] is True
    assert card["training"]["settings"]["lr0"] == 0.001
    assert (models / "tiny-r1" / "model.onnx").exists()
    # the candidate is the mean of the run and its start, not the run alone
    start, run, shipped = (
        load_checkpoint(path)[1].state_dict()
        for path in (models / "tiny" / "model.pt", tmp_path / "runs" / "tiny-r1" / "weights" / "best.pt",
                     models / "tiny-r1" / "model.pt")
    )  # fmt: skip
    moved = [
        k for k, v in start.items() if v.is_floating_point() and not torch.allclose(v, run[k].to(v.dtype))
    ]
    assert moved, "the run changed no weight"
    for key in moved[:20]:
        mean = (start[key].float() + run[key].float()) / 2
        assert torch.allclose(shipped[key].float(), mean, atol=2e-3, rtol=2e-3), key
    entry = Registry(models).read()["history"][-1]
    assert entry["model"] == "tiny-r1" and entry["previous"] == "tiny"
    # each record has its own time: the decision came after the training, not when the job began
    # (stamped so, a job's promotion sat in the history before a rollback made while it trained)
    assert job.body["started_at"] <= card["retrained_from"]["at"] < entry["at"] <= job.body["finished_at"]
    judged = decide(
        entry["scores"]["candidate"], entry["scores"]["current"], load_policy(config, taxonomy=TAXONOMY)
    )
    assert entry["action"] == ("promote" if judged.promote else "refuse") == card["promotion"]["action"]
    assert Registry(models).current == ("tiny-r1" if judged.promote else "tiny")
    assert job.body["promoted"] is judged.promote
    assert code == (0 if judged.promote else 1)  # a refused candidate exits 1, as with --now


def test_a_retraining_on_a_holdout_not_frozen_fails_before_it_trains(
    tmp_path: Path, cli_cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`models retrain` trained (hours on the CPU), packaged the candidate and only then found the
    holdout not frozen (or changed), which refuses every judgement: it now says so first."""
    models = tmp_path / "models"
    tiny_model(models)
    Registry(models).record({"at": AT.isoformat(), "action": "initial", "model": "tiny"}, current="tiny")
    holdout = write_set(
        tmp_path / "holdout",
        SOURCES["bins"]["names"],
        {"val": [random_boxes(np.random.default_rng(5), 64, ["garbage"], 1) for _ in range(2)]},
        64,
    )
    config = tmp_path / "promotion.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "metric": "ap50",
                "holdout": {"name": "synthetic", "sets": [{"data": str(holdout), "split": "val"}]},
                "retrain": {"base_mix": str(write_mix(tmp_path / "base", size=64, train=2, val=1))},
            }
        )
    )
    capsys.readouterr()
    code = main(
        ["models", "--models-dir", str(models), "--config", str(config), "retrain", "--now",
         "--datasets-dir", str(tmp_path / "datasets"), "--work-dir", str(tmp_path / "work"),
         "--runs-dir", str(tmp_path / "runs")]
    )  # fmt: skip
    assert code == 1 and "holdout.sha256 is not set; freeze the holdout" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (models / "tiny-r1").exists()
    # a queued job fails the same way, said in one line (it printed the job's record, traceback and all)
    job = queue_job(tmp_path / "annotations", "START_TRAINING from Label Studio project 3", AT, project=3)
    code = main(
        ["models", "--models-dir", str(models), "--config", str(config), "retrain",
         "--annotations-dir", str(tmp_path / "annotations"), "--datasets-dir", str(tmp_path / "datasets"),
         "--work-dir", str(tmp_path / "work"), "--runs-dir", str(tmp_path / "runs")]
    )  # fmt: skip
    [failed] = list_jobs(tmp_path / "annotations")
    digest = holdout_digest(load_policy(config, taxonomy=TAXONOMY))[0]
    assert code == 1 and capsys.readouterr().out == (
        f"job {job.id}: failed: PromotionError: {config}: holdout.sha256 is not set; freeze the holdout by "
        f"setting it to {digest} (traceback in {failed.path})\n"
    )
