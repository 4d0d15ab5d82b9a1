"""Review gating over HTTP with the real model and real street photos (SQLite and PostgreSQL): an AI
finding is a report awaiting a person; it has no clock and counts in no rate, ranking, overdue list
or worst spot until it is confirmed and filed (立案), and the clock starts at filing. A class the
bureau trusts (configs/workflow.yaml `auto_file`) is filed at once, recorded on the case."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from configured import CONFIGS, MODELS
from conftest import Service
from PIL import Image
from test_scan import START, spot

from serve.cases.deadlines import deadline, load_calendar
from serve.cli.demo import pick_sample_photos
from vision.core.imageio import Position, exif_for
from vision.core.taxonomy import Deadline
from vision.detect.registry import CURRENT, ModelError, find_model

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "garbage-cn"


def garbage_photos(folder: Path, count: int, positions: list[Position] | None = None) -> list[bytes]:
    """`count` garbage-cn photos the model finds garbage on, 600 px, with EXIF GPS in grid i (or at
    `positions`) and START as capture time; skips the test without the current model or the data set."""
    try:
        find_model(CURRENT, models_dir=MODELS)
        samples = pick_sample_photos(DATASET, count)
    except (ModelError, OSError) as err:  # OSError: FileNotFoundError of a missing data set
        pytest.skip(f"needs the current model and ../shared/datasets/garbage-cn ({err})")
    photos = []
    for i, source in enumerate(samples):
        with Image.open(source) as image:
            picture = image.convert("RGB").resize((600, 600))
        path = folder / f"p{i}.jpg"
        picture.save(
            path,
            "JPEG",
            quality=90,
            exif=exif_for(position=positions[i] if positions else spot(i), taken_at=START),
        )
        photos.append(path.read_bytes())
    return photos


@pytest.fixture(scope="module")
def street_photos(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return garbage_photos(tmp_path_factory.mktemp("review"), 2)


@pytest.fixture
def service_overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    """Parametrised with an `auto_file` mapping: the project's configs with that policy."""
    policy = getattr(request, "param", None)
    if policy is None:
        return {}
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    workflow = yaml.safe_load((configs / "workflow.yaml").read_text(encoding="utf-8"))
    (configs / "workflow.yaml").write_text(
        yaml.safe_dump({**workflow, "auto_file": policy}), encoding="utf-8"
    )
    return {"configs_dir": configs}


def post_report(service: Service, photo: bytes) -> list[dict[str, Any]]:
    """POST /v1/reports an hour after the photos were taken (a capture time ahead of the clock is refused)."""
    service.clock.at = max(service.clock.at, START + timedelta(hours=1))
    response = service.client.post(
        "/v1/reports", files={"file": ("p.jpg", photo, "image/jpeg")}, headers=service.auth("report")
    )
    assert response.status_code == 200, response.text
    return list(response.json()["cases"])


def get(service: Service, path: str, **params: Any) -> Any:
    response = service.client.get(path, params=params, headers=service.auth("cases:read"))
    assert response.status_code == 200, response.text
    return response.json()


def act(service: Service, case_id: int, when: datetime, action: str, **fields: Any) -> dict[str, Any]:
    service.clock.at = when
    response = service.transition(case_id, action, **fields)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_ai_findings_count_only_once_confirmed_and_filed(
    service: Service, street_photos: list[bytes]
) -> None:
    found = [case for photo in street_photos for case in post_report(service, photo)]
    assert len(found) >= 2
    next_day = (START + timedelta(days=3)).isoformat()
    cases = get(service, "/v1/cases", limit=100)["items"]
    assert {c["state"] for c in cases} == {"reported"} and {c["ai_review"] for c in cases} == {"pending"}
    assert {c["deadline_at"] for c in cases} == {None} and not any(c["auto_filed"] for c in cases)
    assert get(service, "/v1/cases", overdue="true", as_of=next_day)["items"] == []
    assert get(service, "/v1/stats/worst-spots")["spots"] == []
    total = get(service, "/v1/stats")["total"]
    assert (total["reports"], total["pending_review"], total["filed"]) == (len(cases), len(cases), 0)
    assert total["problems_per_km2"] == 0.0 and total["valid_report_rate"] is None
    ranking = get(service, "/v1/stats/ranking", day=START.date().isoformat())["streets"]
    assert {r["problems"] for r in ranking} == {0}

    # A person confirms one finding at 09:10 and files it at 09:20 (立案): its clock starts then.
    chosen, other = cases[-1], cases[0]
    act(service, chosen["id"], START + timedelta(minutes=10), "confirm")
    filed = act(service, chosen["id"], START + timedelta(minutes=20), "file")
    assert filed["state"] == "filed" and filed["ai_review"] == "confirmed"
    limit = next(e for e in get(service, "/v1/events") if e["key"] == filed["event"])
    expected = deadline(
        START + timedelta(minutes=20),
        Deadline(limit["limit"], limit["unit"]),
        load_calendar(CONFIGS / "calendar.yaml"),
    )
    assert datetime.fromisoformat(filed["deadline_at"]) == expected
    act(service, other["id"], START + timedelta(minutes=30), "reject", note="误报: 墙面污渍")

    overdue = get(service, "/v1/cases", overdue="true", as_of=next_day)["items"]
    assert [c["id"] for c in overdue] == [chosen["id"]]
    spots = get(service, "/v1/stats/worst-spots")["spots"]
    assert [(s["grid_code"], s["open_cases"]) for s in spots] == [(chosen["grid_code"], 1)]
    total = get(service, "/v1/stats")["total"]
    assert (total["pending_review"], total["valid"], total["rejected"], total["filed"]) == (
        len(cases) - 2,
        1,
        1,
        1,
    )
    assert total["valid_report_rate"] == 0.5 and total["filing_rate"] == 1.0
    assert total["missed"] == 0  # found by the patrol photo, not by a citizen
    ranking = get(service, "/v1/stats/ranking", day=START.date().isoformat())["streets"]
    assert sum(r["problems"] for r in ranking) == 1


@pytest.mark.parametrize(
    "service_overrides", [{"exposed_garbage": 0.0, "overflowing_bin": 1.0}], indirect=True
)
def test_a_trusted_class_is_filed_at_once_and_says_so(service: Service, street_photos: list[bytes]) -> None:
    found = [case for photo in street_photos for case in post_report(service, photo)]
    cases = [get(service, f"/v1/cases/{c['id']}") for c in found]
    garbage = [c for c in cases if c["event"] == "exposed_garbage"]
    others = [c for c in cases if c["event"] != "exposed_garbage"]
    assert garbage, "the sample photos show exposed garbage"
    for case in garbage:
        assert case["state"] == "filed" and case["auto_filed"] is True and case["ai_review"] == "pending"
        assert [(f["action"], f["operator"]) for f in case["flow"]] == [
            ("report", "report-user"),
            ("file", "auto-filing"),
        ]
        assert "auto_file" in case["flow"][1]["note"]
        assert datetime.fromisoformat(case["flow"][1]["at"]) == START  # filed when it was seen
        assert case["deadline_at"] is not None and "dispatch" in case["allowed_actions"]
    assert others, "and overflowing bins"
    for case in others:  # a bin needs a confidence of 1.0 to be trusted: it waits for review
        assert case["state"] == "reported" and case["auto_filed"] is False and case["deadline_at"] is None
    total = get(service, "/v1/stats")["total"]
    assert (total["filed"], total["valid"], total["pending_review"]) == (
        len(garbage),
        len(garbage),
        len(others),
    )
