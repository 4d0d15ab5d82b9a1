"""Hostile STREETORDER_* values stop a command at its start with one line naming the variable (ops
check 2026-12-07): before, NaN, infinity, negative radii and a 100-digit thread count were taken
(a service that filed every finding as a new case, or crashed on its first upload), and a value
out of a declared bound was a pydantic traceback."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from serve.cases.settings import get_settings
from serve.cli.main import main

HUNDRED_DIGITS = "9" * 100


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("STREETORDER_DUPLICATE_RADIUS_M", "NaN", "finite number"),
        ("STREETORDER_DUPLICATE_RADIUS_M", "-5", "greater than 0"),
        ("STREETORDER_DUPLICATE_WINDOW_H", "-1", "greater than 0"),
        ("STREETORDER_MAX_UPLOAD_MB", "inf", "finite number"),
        ("STREETORDER_INFERENCE_THREADS", HUNDRED_DIGITS, "less than or equal to 1024"),
        ("STREETORDER_INFERENCE_QUEUE", "-3", "greater than or equal to 0"),
        ("STREETORDER_NOTIFY_S", "-1", "greater than or equal to 0"),
        ("STREETORDER_KEY_RATE_PER_MIN", "-1", "greater than or equal to 1"),
        ("STREETORDER_KEY_RATE_PER_MIN_BY_SCOPE", "not json", "JSON expected"),
        # a misspelt variable was ignored: the radius stayed 50 m and nobody was told
        ("STREETORDER_DUPLICATE_RADIUS", "80", "did you mean STREETORDER_DUPLICATE_RADIUS_M?"),
        ("STREETORDER_GRID_CRS", "gcj02", "did you mean STREETORDER_GRIDS_CRS?"),
        ("STREETORDER_DB", "sqlite:///x.db", "did you mean STREETORDER_DB_URL?"),
    ],
)
def test_a_hostile_setting_is_one_line_naming_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = main(["stats", "--db", f"sqlite:///{tmp_path / 'cases.db'}"])
    finally:
        get_settings.cache_clear()
    lines = err.getvalue().strip().splitlines()
    assert code == 1 and len(lines) == 1, err.getvalue()
    assert lines[0].startswith(f"streetorder stats: {variable}") and said in lines[0]
    assert not (tmp_path / "cases.db").exists()  # stopped before touching the database


def test_a_secret_out_of_bounds_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from serve.cases.settings import Settings, settings_problem

    with pytest.raises(ValidationError) as caught:
        Settings(secret=["s3cret-value"], duplicate_radius_m=float("nan"))  # type: ignore[arg-type]
    said = settings_problem(caught.value)
    assert said is not None and "STREETORDER_SECRET=***" in said and "s3cret" not in said


def test_a_bureaus_configs_folder_brings_its_own_notifications(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STREETORDER_CONFIGS_DIR names the folder notifications.yaml is in (README); the package's file
    was read whatever it said, so a bureau's own webhooks were silently never called."""
    from serve.cases.settings import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STREETORDER_NOTIFICATIONS", raising=False)
    monkeypatch.setenv("STREETORDER_CONFIGS_DIR", str(tmp_path / "bureau"))
    assert Settings().notifications_file() == tmp_path / "bureau" / "notifications.yaml"
    monkeypatch.setenv("STREETORDER_NOTIFICATIONS", str(tmp_path / "elsewhere.yaml"))
    assert Settings().notifications_file() == tmp_path / "elsewhere.yaml"


def test_other_streetorder_variables_are_left_alone() -> None:
    """Webhook secrets named by notifications.yaml share the prefix and are no typo of a setting."""
    from serve.cases.settings import misspelt_settings

    environ = {
        "STREETORDER_WEBHOOK_SANITATION": "s" * 20,
        "STREETORDER_LABELSTUDIO_VENV": "/v",
        "PATH": "/bin",
    }
    assert misspelt_settings(environ) == []
    assert misspelt_settings({"STREETORDER_SECRETS": "hunter2hunter2hunter2"}) == [
        "STREETORDER_SECRETS=***: no such setting; did you mean STREETORDER_SECRET?"
    ]
