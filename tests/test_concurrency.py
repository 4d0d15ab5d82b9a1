"""Many clients at once against a real server (uvicorn on 127.0.0.1), on SQLite and PostgreSQL:
the same photo uploaded concurrently, different photos of the same violation, and citizens
reporting the same spot, each make exactly one case per violation, with every piece of evidence."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import func, select
from test_api_detect import PLACE, Photo311, street_photo

from serve.cases.db import open_database
from serve.cases.orm import Case, Evidence, FlowEntry, Photo
from serve.cli.bench_load import LiveService, running_service

CLIENTS = 16
__all__ = ["street_photo"]  # the fixture: a real photo on which the model finds a patrol finding


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Any:
    with running_service(db_url, tmp_path, env={"STREETORDER_INFERENCE_QUEUE": str(4 * CLIENTS)}) as service:
        yield service


async def send_all(live: LiveService, requests: list[dict[str, Any]]) -> list[httpx.Response]:
    """All requests at once, one connection each."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=live.base, timeout=300, limits=limits) as client:
        return await asyncio.gather(*(client.request(**r) for r in requests))


def reencoded(jpeg: bytes, quality: int) -> bytes:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def report(live: LiveService, photo: bytes, minute: int) -> dict[str, Any]:
    return {
        "method": "POST",
        "url": "/v1/reports",
        "files": {"file": ("p.jpg", photo, "image/jpeg")},
        "data": {**PLACE, "taken_at": f"2025-09-30T09:{minute:02d}:00+08:00"},
        "headers": live.auth("report"),
    }


def counts(db_url: str) -> dict[str, int]:
    factory = open_database(db_url)
    with factory() as session:
        found = {
            table.__tablename__: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (Case, Evidence, FlowEntry, Photo)
        }
    factory.kw["bind"].dispose()
    return found


def one_case_per_event(responses: list[httpx.Response]) -> dict[str, set[int]]:
    cases: dict[str, set[int]] = defaultdict(set)
    for response in responses:
        assert response.status_code == 200, response.text
        for case in response.json()["cases"]:
            cases[case["event"]].add(case["id"])
    assert cases, "the model found nothing to file"
    assert all(len(ids) == 1 for ids in cases.values()), dict(cases)
    return cases


def test_the_same_photo_sent_by_many_clients_makes_one_case(
    live: LiveService, street_photo: Photo311, db_url: str
) -> None:
    responses = asyncio.run(send_all(live, [report(live, street_photo.jpeg, 15) for _ in range(CLIENTS)]))
    cases = one_case_per_event(responses)
    assert sorted(cases) == street_photo.events
    created = sum(c["created"] for r in responses for c in r.json()["cases"])
    assert created == len(street_photo.events)
    assert counts(db_url) == {
        "cases": len(cases),
        "evidence": len(cases),  # the same photo is one piece of evidence, however often it comes
        "flow_log": len(cases),
        "photos": 1,
    }


def test_different_photos_of_one_violation_make_one_case(
    live: LiveService, street_photo: Photo311, db_url: str
) -> None:
    """Sixteen inspectors photograph the same pile a minute apart (different bytes each)."""
    photos = [reencoded(street_photo.jpeg, 60 + 2 * i) for i in range(CLIENTS)]
    assert len(set(photos)) == CLIENTS
    responses = asyncio.run(send_all(live, [report(live, p, i) for i, p in enumerate(photos)]))
    cases = one_case_per_event(responses)
    found = counts(db_url)
    assert found["cases"] == len(cases) and found["photos"] == CLIENTS
    evidence = sum(len(r.json()["cases"]) for r in responses)
    assert found["evidence"] == evidence  # every photo that showed it is evidence of that one case


def test_citizens_reporting_one_spot_at_once_make_one_case(live: LiveService, db_url: str) -> None:
    """Open311, no model involved: 32 requests within 30 m of each other, all at once."""
    requests = [
        {
            "method": "POST",
            "url": "/open311/v2/requests.json",
            "data": {
                "service_code": "06010",
                "lat": str(34.72265 + 0.00001 * i),  # up to 34 m north of the first
                "long": "113.62762",
                "description": f"pile seen by citizen {i}",
            },
            "headers": live.auth("report"),
        }
        for i in range(2 * CLIENTS)
    ]
    responses = asyncio.run(send_all(live, requests))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    numbers = {r.json()[0]["service_request_id"] for r in responses}
    assert len(numbers) == 1
    notices = [r.json()[0]["service_notice"] for r in responses]
    assert notices.count("已受理，新建案卷") == 1  # the others joined it
    assert counts(db_url)["cases"] == 1 and counts(db_url)["evidence"] == 2 * CLIENTS
