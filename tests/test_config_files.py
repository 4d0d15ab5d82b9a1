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
        (  # a billion minutes was taken: no step ever late
            "workflow.yaml",
            lambda d: d["stage_limits_minutes"].update(dispatch=10**9),
            r"stage_limits_minutes\.dispatch: Input should be less than or equal to 43200",
        ),
        (
            "workflow.yaml",
            lambda d: d.update(stage_clock="office"),
            r"stage_clock: Input should be 'continuous' or 'working'",
        ),
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
    path = broken(tmp_path, "promotion.yaml", lambda d: d["retrain"].update(lr0="fast"))
    with pytest.raises(PromotionError, match=rf"^{path}: retrain\.lr0: Input should be a valid number"):
        load_policy(path, TAXONOMY)  # refused when read, not hours into a retraining job
    path = broken(tmp_path, "promotion.yaml", lambda d: d["retrain"].update(epoch=3))
    with pytest.raises(PromotionError, match=rf"^{path}: retrain\.epoch: Extra inputs"):
        load_policy(path, TAXONOMY)


@pytest.mark.parametrize(
    ("name", "text", "argv", "message"),
    [
        ("calendar.yaml", "years: [", ["calendar", "check"], "line 1, column 9: expected the node content"),
        ("taxonomy.yaml", "classes:\n  - name: x\n   bad", ["stats", "--db", "{db}"], "line 3, column 4"),
        (
            "routing.yaml",
            "rules: []",
            ["users", "--db", "{db}", "create", "ana", "--role", "admin"],
            "departments",
        ),
        ("calendar.yaml", "holidays: {}", ["serve", "--db", "{db}", "--port", "0"], "holidays"),
        (  # a day that does not exist: PyYAML's bare ValueError was a traceback from every mode
            "calendar.yaml",
            "holidays:\n  - 2027-01-01\n  - 2026-02-30\n",
            ["calendar", "check"],
            "line 3, column 5: '2026-02-30' is not a date",
        ),
        (  # the webhook's secret variable unset: a traceback from uvicorn's start-up
            "notifications.yaml",
            "targets:\n  - {url: 'http://127.0.0.1:9/x', secret_env: STREETORDER_TEST_UNSET_SECRET}\n",
            ["serve", "--db", "{db}", "--port", "0"],
            "targets[0].secret_env: STREETORDER_TEST_UNSET_SECRET is not set",
        ),
        (  # a target of a department routing.yaml does not have would hear of no case
            "notifications.yaml",
            "targets:\n  - {adapter: 'serve.cases.notify:Message', departments: [环卫所]}\n",
            ["serve", "--db", "{db}", "--port", "0"],
            "targets[0].departments: '环卫所' is no department of routing.yaml",
        ),
    ],
    ids=["calendar", "stats", "users", "serve", "no-such-day", "webhook-secret", "notify-department"],
)
def test_every_mode_names_a_broken_config_file_in_one_line(
    tmp_path: Path, name: str, text: str, argv: list[str], message: str
) -> None:
    """A broken configs/*.yaml was a traceback from each mode that reads it (and from uvicorn's
    start-up for `serve`), its message five lines of PyYAML quoting "<unicode string>"; now one line
    naming the file, the line and column or the field, exit 1."""
    import os
    import shutil
    import subprocess
    import sys

    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    (configs / name).write_text(text, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "serve.cli", *(a.format(db=db) for a in argv)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "STREETORDER_CONFIGS_DIR": str(configs),
            "STREETORDER_SECRET": "tests-only-secret-0123456789",
            "STREETORDER_NEW_PASSWORD": "a long enough password",
        },
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"streetorder {argv[0]}: {configs / name}: " in done.stderr and message in done.stderr


def test_the_service_says_at_start_which_routing_rule_no_grid_meets(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A street misspelt (浆洗街道 for 浆洗街街道) or a grid prefix of another district in routing.yaml
    loaded and silently never routed a case: every one went to the default department."""
    import logging
    import shutil

    from fastapi.testclient import TestClient

    from serve.api.app import create_app
    from serve.cases.settings import Settings

    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    routing = yaml.safe_load((configs / "routing.yaml").read_text(encoding="utf-8"))
    routing["rules"][2]["grids"] = ["510107003"]
    routing["rules"][3]["streets"] = ["淮河街道"]
    (configs / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True), encoding="utf-8")
    settings = Settings.model_validate(
        {
            "secret": "tests-only-secret-0123456789",
            "db_url": db_url,
            "evidence_dir": tmp_path / "evidence",
            "configs_dir": configs,
        }
    )
    with caplog.at_level(logging.WARNING, logger="streetorder.service"), TestClient(create_app(settings)):
        pass
    said = [r.getMessage() for r in caplog.records if "routing.yaml" in r.getMessage()]
    assert len(said) == 2, said
    assert "rules[2].grids: no unit grid's code starts with '510107003'" in said[0]
    assert "rules[3].streets: '淮河街道' is the street of no unit grid" in said[1]
    assert all(str(configs / "routing.yaml") in line and "never routes a case" in line for line in said)
