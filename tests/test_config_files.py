"""The configuration files read through the one loader (vision/core/config.py): routing, stats,
workflow, flyers and promotion; the committed files load, and a broken field is refused with an error
naming the file and the field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from configured import CONFIGS, TAXONOMY

from serve.cases.routing import load_routing
from serve.cases.stats import load_score_weights
from serve.cases.workflow import load_stage_limits
from vision.core.config import ConfigError
from vision.detect.flyers import load_flyer_rules
from vision.modelops.promote import PromotionError, load_policy

LOADERS: dict[str, Callable[[Path], Any]] = {
    "routing.yaml": lambda path: load_routing(path, TAXONOMY),
    "stats.yaml": load_score_weights,
    "workflow.yaml": load_stage_limits,
    "flyers.yaml": load_flyer_rules,
}


def broken(tmp_path: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    data = copy.deepcopy(yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8")))
    change(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_the_committed_file_loads(name: str) -> None:
    assert LOADERS[name](CONFIGS / name)


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("routing.yaml", lambda d: d.update(default="nobody"), r"default: 'nobody' is not in departments"),
        ("routing.yaml", lambda d: d["rules"][1].update(department="x"), r"rules\[1\]\.department: 'x'"),
        (
            "routing.yaml",
            lambda d: d["rules"][0].update(events=["nope"]),
            r"rules\[0\]\.events: 'nope' is not",
        ),
        (
            "routing.yaml",
            lambda d: d["rules"][2].update(grids=["41a"]),
            r"rules\[2\]\.grids: '41a' is not a grid",
        ),
        ("routing.yaml", lambda d: d["rules"][2].update(colour="red"), r"rules\[2\]\.colour: Extra inputs"),
        ("stats.yaml", lambda d: d["score_weights"].update(speed=1), r"score_weights: speed: not a rate"),
        (
            "stats.yaml",
            lambda d: d["score_weights"].update(closing_rate="high"),
            r"score_weights\.closing_rate: ",
        ),
        (
            "workflow.yaml",
            lambda d: d["stage_limits_minutes"].update(verify=0),
            r"stage_limits_minutes\.verify: ",
        ),
        ("workflow.yaml", lambda d: d.update(stage_limits={}), r"stage_limits: Extra inputs"),
        ("flyers.yaml", lambda d: d.update(scan="sometimes"), r"scan: Input should be 'off', 'detector'"),
        ("flyers.yaml", lambda d: d["confidence"].update(phone=2), r"confidence: phone: a confidence lies"),
        (
            "flyers.yaml",
            lambda d: d.update(street_signs=["("]),
            r"street_signs\[0\]: Input should be a valid regular",
        ),
        ("flyers.yaml", lambda d: d.update(find_side=0), r"find_side: Input should be greater"),
        ("flyers.yaml", lambda d: d.update(word=["x"]), r"word: Extra inputs"),
    ],
)
def test_a_broken_field_is_named_with_its_file(
    tmp_path: Path, name: str, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = broken(tmp_path, name, change)
    with pytest.raises(ConfigError, match=rf"^{path}: {message}"):
        LOADERS[name](path)


def test_unreadable_yaml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text("stage_limits_minutes: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{path}: not valid YAML"):
        load_stage_limits(path)


def test_a_broken_promotion_policy_is_named_with_its_file(tmp_path: Path) -> None:
    """promotion.yaml's paths are relative to it, so the broken copy is checked for its fields only."""
    path = broken(tmp_path, "promotion.yaml", lambda d: d.update(metric="f1"))
    with pytest.raises(PromotionError, match=rf"^{path}: metric: Input should be 'ap50' or 'ap50_95'"):
        load_policy(path, TAXONOMY)
    path = broken(tmp_path, "promotion.yaml", lambda d: d["holdout"].update(sets=[]))
    with pytest.raises(PromotionError, match=rf"^{path}: holdout\.sets: List should have at least 1 item"):
        load_policy(path, TAXONOMY)
