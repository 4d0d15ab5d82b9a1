"""Calendar coverage: deadlines set near the end of the last year the calendar lists may run into a
year whose holidays it does not know; the service warns at start-up and in /readyz, and
`streetorder calendar check` says what to add (exit 1) or that it is covered (exit 0)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Clock, Service

from serve.cases.settings import Settings
from serve.cli.main import main

TZ = ZoneInfo("Asia/Shanghai")
LATE_IN_2026 = datetime(2026, 12, 5, 10, 0, tzinfo=TZ)


def test_readyz_tells_the_coverage(service: Service) -> None:
    ready = service.client.get("/readyz").json()
    assert ready["calendar"].startswith("holidays listed up to 2026")  # the clock is in 2025
    service.clock.at = LATE_IN_2026
    warned = service.client.get("/readyz")
    assert warned.status_code in (200, 503)  # readiness is the model's and the database's
    assert (
        "2027" in warned.json()["calendar"]
        and "国务院办公厅关于2027年部分节假日安排的通知" in warned.json()["calendar"]
    )


def test_the_service_warns_at_start(db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from fastapi.testclient import TestClient

    from serve.api.app import create_app

    settings = Settings.model_validate(
        {"secret": "tests-only-secret-0123456789", "db_url": db_url, "evidence_dir": tmp_path / "evidence"}
    )
    with (
        caplog.at_level(logging.WARNING, logger="streetorder.service"),
        TestClient(create_app(settings, clock=Clock(LATE_IN_2026))),
    ):
        pass
    assert any("working calendar" in r.message and "2027" in r.message for r in caplog.records)


def test_calendar_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "check", "--today", "2026-12-05"]) == 1
    out = capsys.readouterr().out
    assert "2026: 33 holiday(s), 6 make-up working day(s)" in out and "Add 2027's holidays" in out
    assert main(["calendar", "check", "--today", "2026-06-01"]) == 0
    assert "covered: holidays are listed up to 2026" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        main(["calendar", "check", "--today", "tomorrow"])
    assert usage.value.code == 2


def test_a_year_left_out_between_listed_years_is_not_covered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """2025 and 2027 listed, 2026 not: the check said "covered: holidays are listed up to 2027" while
    deadlines set in 2026 counted its 国庆 as working days."""
    import shutil

    from serve.cases.settings import get_settings

    configs = tmp_path / "configs"
    shutil.copytree(Path(__file__).resolve().parents[1] / "configs", configs)
    (configs / "calendar.yaml").write_text(
        "holidays:\n  - 2025-10-01..2025-10-08\n  - 2027-01-01\n", encoding="utf-8"
    )
    monkeypatch.setenv("STREETORDER_CONFIGS_DIR", str(configs))
    get_settings.cache_clear()
    try:
        assert main(["calendar", "check", "--today", "2026-12-05"]) == 1
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "lists no holidays in 2026" in out and "Add 2026's holidays" in out, out
