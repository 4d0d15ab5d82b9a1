"""Many clients at once against a real server (uvicorn on 127.0.0.1), on SQLite and PostgreSQL:
the same photo uploaded concurrently, different photos of the same violation, and citizens
reporting the same spot, each make exactly one case per violation, with every piece of evidence."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from test_api_detect import PLACE, VAL_IMAGES, Photo311, street_photo

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


# --- writers beside each other: operators, a scan process, a second scan (2026-12-07) -------------

ROUNDS = 6


def open311_case(live: LiveService, client: httpx.Client, lon: float) -> int:
    """A new case (state reported) from a citizen's report, no model involved; its id."""
    answer = client.post(
        "/open311/v2/requests.json",
        data={"service_code": "06010", "lat": "34.72265", "long": f"{lon:.5f}", "description": "pile"},
        headers=live.auth("report"),
    )
    assert answer.status_code == 201, answer.text
    number = answer.json()[0]["service_request_id"]
    listed = client.get("/v1/cases", params={"limit": 200}, headers=live.auth("cases:read")).json()["items"]
    return int(next(case["id"] for case in listed if case["number"] == number))


def step(live: LiveService, client: httpx.Client, case_id: int, action: str, **fields: Any) -> httpx.Response:
    etag = client.get(f"/v1/cases/{case_id}", headers=live.auth("cases:read")).headers["ETag"]
    return client.post(
        f"/v1/cases/{case_id}/transitions",
        json={"action": action, **fields},
        headers={**live.auth("cases:write"), "If-Match": etag},
    )


def at_once(*calls: Any) -> list[httpx.Response]:
    """The calls from threads of their own, released together; a hang fails instead of waiting."""
    with ThreadPoolExecutor(len(calls)) as pool:
        barrier = threading.Barrier(len(calls))

        def run(call: Any) -> httpx.Response:
            barrier.wait(timeout=60)
            return call()  # type: ignore[no-any-return]

        return [future.result(timeout=300) for future in [pool.submit(run, c) for c in calls]]


def test_two_operators_acting_on_one_case_at_once_one_wins(live: LiveService, db_url: str) -> None:
    """Two operators who read the same ETag send a step at once (both dispatch; confirm and reject):
    one is applied, the other is a 412 problem, never a 500, both applied, or two flow entries."""
    with httpx.Client(base_url=live.base, timeout=120) as client:
        for round_ in range(ROUNDS):
            case_id = open311_case(live, client, 113.6265 + 0.0006 * round_)
            for first, second, expected in [
                ({"action": "confirm"}, {"action": "reject", "note": "误报"}, None),
                ({"action": "file"}, {"action": "file"}, "filed"),
                ({"action": "dispatch"}, {"action": "dispatch"}, "dispatched"),
            ]:
                case = client.get(f"/v1/cases/{case_id}", headers=live.auth("cases:read"))
                headers = {**live.auth("cases:write"), "If-Match": case.headers["ETag"]}
                url = f"/v1/cases/{case_id}/transitions"
                answers = at_once(
                    partial(client.post, url, json=first, headers=headers),
                    partial(client.post, url, json=second, headers=headers),
                )
                assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]
                (won,) = (a for a in answers if a.status_code == 200)
                after = client.get(f"/v1/cases/{case_id}", headers=live.auth("cases:read")).json()
                assert after["state"] == won.json()["state"] == (expected or after["state"])
                assert len(after["flow"]) == len(case.json()["flow"]) + 1
                if after["state"] == "not_filed":
                    break


def test_evidence_and_a_cancel_at_once_never_leave_photos_on_a_finished_case(
    live: LiveService, street_photo: Photo311, db_url: str
) -> None:
    """An after-photo is checked by the model between "is the case open?" and its insert: a cancel
    (or close) committed in between left the photo on the finished case, its record changed after
    the fact. The photo is refused instead (409 naming the state, or 412), or it came before."""
    photos = [reencoded(street_photo.jpeg, 60 + 3 * i) for i in range(ROUNDS)]
    with httpx.Client(base_url=live.base, timeout=120) as client:
        for round_, photo in enumerate(photos):
            case_id = open311_case(live, client, 113.6265 + 0.0006 * round_)
            etag = client.get(f"/v1/cases/{case_id}", headers=live.auth("cases:read")).headers["ETag"]

            def upload(jpeg: bytes = photo, case_id: int = case_id) -> httpx.Response:
                return client.post(
                    f"/v1/cases/{case_id}/evidence",
                    files={"file": ("after.jpg", jpeg, "image/jpeg")},
                    data={"role": "after", "taken_at": "2025-09-30T09:00:00+08:00"},
                    headers=live.auth("cases:write"),
                )

            def cancel(
                etag: str = etag, case_id: int = case_id, pause: float = 0.02 * round_
            ) -> httpx.Response:
                time.sleep(pause)  # the upload is in the model by then, or not yet
                return client.post(
                    f"/v1/cases/{case_id}/transitions",
                    json={"action": "cancel", "note": "重复上报"},
                    headers={**live.auth("cases:write"), "If-Match": etag},
                )

            added, cancelled = at_once(upload, cancel)
            assert cancelled.status_code == 200, cancelled.text
            assert added.status_code in (201, 409, 412), added.text
            kept = {e["id"] for e in cancelled.json()["evidence"]}  # read once the cancel is committed
            now = client.get(f"/v1/cases/{case_id}", headers=live.auth("cases:read")).json()
            assert {e["id"] for e in now["evidence"]} == kept  # the record as it was when cancelled
            if added.status_code == 201:
                assert added.json()["id"] in kept


def scan_command(folder: Path, db_url: str, sidecar: Path, out: Path) -> list[str]:
    scan = [sys.executable, "-m", "serve.cli.main", "scan", str(folder), "--db", db_url]
    return [*scan, "--sidecar", str(sidecar), "--out", str(out), "--no-progress"]


def scan_archive(tmp_path: Path, count: int) -> tuple[Path, Path]:
    """The last `count` real photos (the service's uploads show one of the first), half of them in
    a subfolder, each at a place and on a day of its own (two days apart: no two are one
    violation), listed in a sidecar; the folder and the sidecar."""
    found = sorted(VAL_IMAGES.glob("*.jpg"))[-count:] if VAL_IMAGES.is_dir() else []
    if len(found) < count:
        pytest.skip(f"{VAL_IMAGES} not found (../shared beside the project)")
    archive = tmp_path / "archive"
    (archive / "sub").mkdir(parents=True)
    rows = ["file,lat,lon,taken_at"]
    for i, photo in enumerate(found):
        name = f"sub/{photo.name}" if i % 2 else photo.name
        (archive / name).write_bytes(photo.read_bytes())
        day = datetime(2025, 1, 1, 9, tzinfo=UTC) + timedelta(days=2 * i)
        rows.append(f"archive/{name},34.7230,{113.6265 + 0.0002 * i:.5f},{day.isoformat()}")
    sidecar = tmp_path / "sidecar.csv"
    sidecar.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return archive, sidecar


def scanned_cases(db_url: str) -> list[tuple[str, str, int]]:
    """(event, first seen, pieces of evidence) of each case the scans filed, sorted."""
    factory = open_database(db_url)
    with factory() as session:
        cases = session.scalars(select(Case).where(Case.lat == 34.7230).options(selectinload(Case.evidence)))
        found = sorted((c.event, c.first_seen_at.isoformat(), len(c.evidence)) for c in cases)
    factory.kw["bind"].dispose()
    return found


def test_two_scans_and_the_service_write_one_database_at_once(
    live: LiveService, street_photo: Photo311, db_url: str, tmp_path: Path
) -> None:
    """A bureau's day: `streetorder scan` of an archive and, at the same time, of one of its folders
    (two CLI processes), while the service answers reports, Open311 requests and workflow steps on
    the same database. Nothing waits forever, nothing answers 5xx, every photo is recorded once, and
    the scans file the same cases as one scan alone."""
    archive, sidecar = scan_archive(tmp_path, 30)
    logs = [(tmp_path / f"scan-{i}.log").open("wb") for i in range(2)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=live.base, timeout=120) as client:
        case_id = open311_case(live, client, 113.6265)
        for action in ("confirm", "file", "dispatch"):
            assert step(live, client, case_id, action).status_code == 200
        scans = [
            subprocess.Popen(
                scan_command(folder, db_url, sidecar, tmp_path / f"out-{i}"), env=env, stdout=log, stderr=log
            )
            for i, (folder, log) in enumerate(zip([archive, archive / "sub"], logs, strict=True))
        ]
        try:
            deadline, sent = time.monotonic() + 300, 0
            while any(scan.poll() is None for scan in scans) or sent < 3:
                assert time.monotonic() < deadline, "the scans did not finish in 300 s"
                answers.append(step(live, client, case_id, "suspend", note="等待配合"))
                answers.append(step(live, client, case_id, "resume"))
                lon = 113.6265 + 0.0006 * (sent % 10)
                answers.append(
                    client.post(
                        "/open311/v2/requests.json",
                        data={"service_code": "06010", "lat": "34.72265", "long": f"{lon:.5f}"},
                        headers=live.auth("report"),
                    )
                )
                answers.append(
                    client.request(**report(live, reencoded(street_photo.jpeg, 50 + sent), sent % 60))
                )
                sent += 1
            codes = [scan.wait(timeout=60) for scan in scans]
        finally:
            for scan in scans:
                if scan.poll() is None:
                    scan.kill()
            for log in logs:
                log.close()
    said = [(tmp_path / f"scan-{i}.log").read_text(encoding="utf-8") for i in range(2)]
    assert codes == [0, 0], said
    assert all(a.status_code in (200, 201) for a in answers), [
        a.text for a in answers if a.status_code >= 300
    ]
    factory = open_database(db_url)
    with factory() as session:
        archived = {str(p) for p in archive.rglob("*.jpg")}
        paths = [p for p in session.scalars(select(Photo.path)) if p in archived]
        pairs = session.execute(select(Evidence.case_id, Evidence.sha256, Evidence.role)).all()
        numbers = list(session.scalars(select(Case.number)))
    factory.kw["bind"].dispose()
    assert sorted(paths) == sorted(archived)  # each photo once
    assert len(set(pairs)) == len(pairs) and len(set(numbers)) == len(numbers)
    alone = f"sqlite:///{tmp_path / 'alone.db'}"
    subprocess.run(
        scan_command(archive, alone, sidecar, tmp_path / "out-alone"), env=env, check=True, timeout=300
    )
    assert scanned_cases(db_url) == scanned_cases(alone) != []


def test_a_write_that_waits_out_another_writers_lock_is_a_503_that_changes_nothing(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock past the service's busy_timeout (30 s): a long
    transaction of a maintenance job. The step was a 500 ("database is locked"), and the audit
    row after it (waiting 30 s more) would have made any answer a 500. Now: 503 + Retry-After,
    nothing changed, the audit row in the error log, and the same step sent again succeeds."""
    db = tmp_path / "cases.db"
    with (
        running_service(f"sqlite:///{db}", tmp_path) as live,
        httpx.Client(base_url=live.base, timeout=300) as client,
    ):
        case_id = open311_case(live, client, 113.6265)
        before = client.get(f"/v1/cases/{case_id}", headers=live.auth("cases:read"))
        headers = {**live.auth("cases:write"), "If-Match": before.headers["ETag"]}
        holder = sqlite3.connect(db, isolation_level=None, timeout=60)
        try:
            holder.execute("BEGIN IMMEDIATE")  # the write lock, until the rollback below
            waited = client.post(
                f"/v1/cases/{case_id}/transitions", json={"action": "confirm"}, headers=headers
            )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert waited.status_code == 503, waited.text
        assert waited.headers["Retry-After"] == "1" and waited.json()["title"] == "busy"
        after = client.get(f"/v1/cases/{case_id}", headers=live.auth("cases:read"))
        assert after.headers["ETag"] == before.headers["ETag"] and after.json() == before.json()
        again = client.post(f"/v1/cases/{case_id}/transitions", json={"action": "confirm"}, headers=headers)
        assert again.status_code == 200 and again.json()["state"] == "verified"
    said = next(tmp_path.glob("serve-*.log")).read_text(encoding="utf-8")
    assert (
        f"audit row not written, the database stayed busy: POST /v1/cases/{case_id}/transitions -> 503"
        in said
    )


def dispatched_case(live: LiveService, client: httpx.Client, first: httpx.Response) -> int:
    """The case the first report opened, confirmed, filed and dispatched; its id."""
    if first.request.url.path.startswith("/open311/"):
        number = first.json()[0]["service_request_id"]
        listed = client.get("/v1/cases", params={"limit": 200}, headers=live.auth("cases:read")).json()
        case_id = int(next(case["id"] for case in listed["items"] if case["number"] == number))
    else:
        case_id = int(first.json()["cases"][0]["id"])
    for action in ("confirm", "file", "dispatch"):
        assert step(live, client, case_id, action).status_code == 200
    return case_id


@pytest.mark.parametrize("source", ["photo copies", "citizens"])
def test_reports_of_a_case_arriving_while_operators_move_it_all_join_it(
    live: LiveService, street_photo: Photo311, db_url: str, source: str
) -> None:
    """Inspectors keep photographing a pile (each photo a copy of the first: it joins that case),
    or citizens keep reporting it (the duplicate rule joins them), while its case is being worked
    (suspended, resumed). On PostgreSQL a copy whose case was moved between the lookup and the
    append was refused as "changed by someone else" (412, though nobody sent an If-Match; a scan
    shares the code); a copy now holds the case it joins and reads it as it is."""
    photos = [reencoded(street_photo.jpeg, 40 + i) for i in range(24)]

    def send(i: int) -> httpx.Response:
        if source == "citizens":
            place = {"lat": f"{34.72265 + 0.00001 * i:.5f}", "long": "113.62762", "description": f"pile {i}"}
            return client.post(
                "/open311/v2/requests.json",
                data={"service_code": "06010", **place},
                headers=live.auth("report"),
            )
        return client.request(**report(live, photos[i], i))

    with httpx.Client(base_url=live.base, timeout=120) as client:
        first = send(0)
        assert first.status_code in (200, 201), first.text
        case_id = dispatched_case(live, client, first)
        stop = threading.Event()

        def operators() -> list[httpx.Response]:
            answers = []
            while not stop.is_set():  # suspend or resume, whichever the case they see takes
                seen = client.get(f"/v1/cases/{case_id}", headers=live.auth("cases:read"))
                suspend = seen.json()["state"] == "dispatched"
                answers.append(
                    client.post(
                        f"/v1/cases/{case_id}/transitions",
                        json={"action": "suspend", "note": "等待配合"} if suspend else {"action": "resume"},
                        headers={**live.auth("cases:write"), "If-Match": seen.headers["ETag"]},
                    )
                )
            return answers

        with ThreadPoolExecutor(1) as pool:
            working = pool.submit(operators)
            try:
                sent = [send(i) for i in range(1, len(photos))]
            finally:
                stop.set()
            moved = working.result(timeout=300)
        case = client.get(f"/v1/cases/{case_id}", headers=live.auth("cases:read")).json()
    assert all(a.status_code in (200, 201) for a in sent), [a.text for a in sent if a.status_code >= 300]
    # an operator whose ETag a report made stale reloads and acts again: never a 500
    assert {a.status_code for a in moved} <= {200, 412}, [a.text for a in moved if a.status_code != 200]
    assert len(case["evidence"]) == len(photos)  # every report joined the one case
