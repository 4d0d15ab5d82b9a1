"""The service as an attacker on the bureau's network probes it: the real app on a real uvicorn,
real sockets, a real SQLite database, a second real process.

- absolute links (Open311 discovery and media_url) come from `public_url`, never a forged Host;
- the public /readyz names no server folder or model;
- one address guessing passwords over many account names gets 429 (the per-name limit never saw it);
- one address guessing a person's password locks out that address, not the person; many addresses
  guessing one name meet a slower brake that spares where the person signed in before;
- an API key over its rate gets 429 from any address, other keys go on, /metrics counts it;
- a key's own rate (API, CLI) holds before its role's, lowered or raised from its next request;
- a key revoked by another process is refused on its next use, though the service remembered it;
- a POST cut short leaves no traceback in the error log;
- a 500 (the database changed under the running service) is a generic problem with an incident
  id that finds the logged detail; no SQL, path or driver text in the body;
- no CORS: another origin is granted nothing;
- a form that sends one name twice, a JSON body too deep, with a number too long or not UTF-8,
  and an `operator` that is not shown as itself are 4xx problems naming the cause that change nothing.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import cv2
import httpx
import numpy as np
import pytest
from conftest import serving
from test_api_lifecycle import PLACE
from test_fuzz import assert_problem

from serve.api.app import create_app
from serve.api.state import Service, SignInGuard
from serve.cases.auth import create_key
from serve.cases.db import transaction
from serve.cases.settings import Settings
from serve.cli.bench_load import running_service

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://cases.bureau.example"
SECRET = "hostile-http-secret-0123456789"


@dataclass
class Live:
    base: str
    client: httpx.Client
    state: Service
    settings: Settings
    keys: dict[str, str]

    def auth(self, scope: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[scope]}


@pytest.fixture
def live_overrides() -> dict[str, object]:
    """Settings a test changes for its `live` service (a test parametrizes `live_overrides`)."""
    return {}


@pytest.fixture
def live(tmp_path: Path, live_overrides: dict[str, object]) -> Iterator[Live]:
    settings = Settings.model_validate(
        {
            "db_url": f"sqlite:///{tmp_path / 'cases.db'}",
            "secret": SECRET,
            "model": "no-such-model",
            "evidence_dir": tmp_path / "evidence",
            "annotations_dir": tmp_path / "annotations",
            "public_url": PUBLIC_URL,
            **live_overrides,
        }
    )
    app = create_app(settings)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        state = app.state.service
        with transaction(state.sessions) as session:
            keys = {
                scope: create_key(
                    session, name=scope, scopes=[scope], pepper=state.verifier.pepper, now=datetime.now(UTC)
                )[0]
                for scope in ("admin", "report", "cases:read")
            }
        yield Live(base, client, state, settings, keys)


def photo() -> bytes:
    image = np.random.default_rng(7).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def test_links_come_from_public_url_never_from_a_forged_host(live: Live) -> None:
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    discovery = live.client.get("/open311/discovery.json", headers=forged).json()
    assert discovery["endpoints"][0]["url"] == f"{PUBLIC_URL}/open311/v2"
    filed = live.client.post(
        "/open311/v2/requests.json", data={"service_code": "06010", **PLACE}, headers=live.auth("report")
    )
    assert filed.status_code == 201, filed.text
    number = filed.json()[0]["service_request_id"]
    case_id = live.client.get("/v1/cases", headers=live.auth("admin")).json()["items"][0]["id"]
    added = live.client.post(
        f"/v1/cases/{case_id}/evidence",
        files={"file": ("near.jpg", photo(), "image/jpeg")},
        data={"role": "near"},
        headers=live.auth("admin"),
    )
    assert added.status_code == 201, added.text
    for path in ("/open311/v2/requests.json", f"/open311/v2/requests/{number}.json"):
        (answer,) = live.client.get(path, headers=forged).json()
        assert answer["media_url"] == f"{PUBLIC_URL}/open311/v2/media/{added.json()['id']}.jpg", path
    assert "evil.example" not in live.client.get("/open311/v2/requests.xml", headers=forged).text


def test_public_readiness_names_no_server_folder_or_model(live: Live) -> None:
    ready = live.client.get("/readyz")
    assert ready.status_code == 503 and "model not loaded" in ready.json()["status"]
    assert str(live.settings.models_dir) not in ready.text and "no-such-model" not in ready.text
    assert str(ROOT) not in ready.text
    detect = live.client.post(  # a key that may detect is told why
        "/v1/detect", files={"file": ("a.jpg", photo(), "image/jpeg")}, headers=live.auth("admin")
    )
    assert detect.status_code == 503 and "no-such-model" in detect.json()["detail"]


def test_one_address_spraying_a_password_over_many_names_gets_429(live: Live) -> None:
    for attempt in range(20):
        guessed = live.client.post(
            "/v1/sessions", json={"username": f"user{attempt}", "password": "Spring2026!"}
        )
        assert guessed.status_code == 401, attempt
    limited = live.client.post("/v1/sessions", json={"username": "user99", "password": "Spring2026!"})
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 60
    assert live.client.get("/v1/cases", headers=live.auth("cases:read")).status_code == 429  # the address


def sign_in(live: Live, username: str, password: str, address: str) -> httpx.Response:
    """A sign-in from `address` (uvicorn believes X-Forwarded-For from 127.0.0.1, a local proxy)."""
    return live.client.post(
        "/v1/sessions",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )


def add_person(live: Live, username: str, password: str) -> None:
    person = {"username": username, "password": password, "role": "inspector"}
    made = live.client.post("/v1/users", json=person, headers=live.auth("admin"))
    assert made.status_code == 201, made.text


def test_a_guesser_locks_out_their_own_address_not_the_person(live: Live) -> None:
    """Before, five wrong passwords for a name from anywhere shut the person out for 5 minutes."""
    add_person(live, "inspector", "the inspector's own words")
    for attempt in range(5):
        assert sign_in(live, "inspector", f"guess {attempt}", "10.1.0.66").status_code == 401
    for attempt in range(10):  # hammering on: refused before the password is even checked
        throttled = sign_in(live, "inspector", f"guess {attempt}", "10.1.0.66")
        assert throttled.status_code == 429 and 0 < int(throttled.headers["Retry-After"]) <= 300
    person = sign_in(live, "inspector", "the inspector's own words", "10.1.0.7")
    assert person.status_code == 200, person.text
    assert sign_in(live, "inspector", "the inspector's own words", "10.1.0.66").status_code == 429


def test_guessing_one_name_from_many_addresses_spares_where_the_person_signs_in(live: Live) -> None:
    add_person(live, "chief", "the chief's own words!")
    assert sign_in(live, "chief", "the chief's own words!", "10.2.0.7").status_code == 200  # the office
    for bot in range(6):  # 30 failures from 6 addresses, 5 each: no address is throttled on its own
        for attempt in range(5):
            assert sign_in(live, "chief", f"guess {attempt}", f"10.3.0.{bot}").status_code == 401
    braked = sign_in(live, "chief", "the chief's own words!", "10.4.0.1")  # a new address: the brake
    assert braked.status_code == 429 and int(braked.headers["Retry-After"]) > 300
    assert sign_in(live, "chief", "the chief's own words!", "10.2.0.7").status_code == 200


def test_the_name_brakes_retry_after_is_when_a_new_address_may_try_again() -> None:
    """The person's own address goes on past the name brake, so a name may hold more failures than
    the brake's count; Retry-After said when the oldest aged out, and a new address that waited so
    long met another 429."""
    guard = SignInGuard(name_attempts=2, name_window_s=3.0)
    guard.succeeded("chief", "10.2.0.7")  # the office
    guard.failed("chief", "10.3.0.1")
    time.sleep(1.5)
    guard.failed("chief", "10.3.0.2")  # the brake holds for new addresses
    guard.failed("chief", "10.2.0.7")  # the person mistypes at the office: let through, counted
    assert guard.wait_s("chief", "10.2.0.7") == 0
    wait = guard.wait_s("chief", "10.4.0.1")
    assert wait > 0
    time.sleep(wait)
    assert guard.wait_s("chief", "10.4.0.1") == 0


RATED = {"key_rate_per_min": 6, "key_burst_s": 100, "key_rate_per_min_by_scope": {"report": 60}}


@pytest.mark.parametrize("live_overrides", [RATED])
def test_a_key_over_its_rate_gets_429_from_any_address_and_other_keys_go_on(live: Live) -> None:
    """6 a minute with 100 s of burst: 10 at once, then one every 10 s; a `report` key (cameras)
    60 a minute: 100 at once. Before, a key sent as fast as the service took its requests."""
    reader = live.auth("cases:read")
    for n in range(10):  # a leaked key moves from address to address: the key is counted
        answer = live.client.get("/v1/cases", headers={**reader, "X-Forwarded-For": f"10.5.0.{n}"})
        assert answer.status_code == 200, (n, answer.text)
    limited = live.client.get("/v1/cases", headers={**reader, "X-Forwarded-For": "10.5.1.1"})
    assert limited.status_code == 429 and limited.headers["content-type"] == "application/problem+json"
    assert 0 < int(limited.headers["Retry-After"]) <= 10
    key_id = live.keys["cases:read"].split("_")[1]
    assert key_id in limited.json()["detail"] and "6 requests a minute" in limited.json()["detail"]
    for _ in range(30):  # the camera role's rate: its bucket holds 100
        assert live.client.get("/v1/sessions/current", headers=live.auth("report")).status_code == 200
    metrics = live.client.get("/metrics", headers=live.auth("admin"))
    assert metrics.status_code == 200  # another key is not held back by the first
    assert f'streetorder_key_rate_limited_total{{key_id="{key_id}"}} 1.0' in metrics.text


def make_key(live: Live, scope: str, rate_per_min: int | None) -> tuple[dict[str, str], str]:
    """A key of `scope` made with POST /v1/keys: its headers and key id."""
    made = live.client.post(
        "/v1/keys",
        json={"name": f"{scope} bridge", "scopes": [scope], "rate_per_min": rate_per_min},
        headers=live.auth("admin"),
    )
    assert made.status_code == 201, made.text
    assert made.json()["rate_per_min"] == rate_per_min
    return {"X-API-Key": made.json()["key"]}, made.json()["key_id"]


@pytest.mark.parametrize("live_overrides", [RATED])
def test_a_keys_own_rate_holds_before_its_roles(live: Live) -> None:
    """A `report` key held to 6 a minute (a citizens' app) has 10 at once where its role has 100; a
    `cases:read` key raised to 600 (a dashboard) has 1000 where the default has 10. Before, a key's
    rate came from its scopes alone."""
    app_key, app_id = make_key(live, "report", 6)
    for _ in range(10):
        assert live.client.get("/v1/sessions/current", headers=app_key).status_code == 200
    held = live.client.get("/v1/sessions/current", headers=app_key)
    assert (
        held.status_code == 429
        and f"API key {app_id} is over its 6 requests a minute" in held.json()["detail"]
    )
    dashboard, _ = make_key(live, "cases:read", 600)
    for n in range(30):
        assert live.client.get("/v1/cases", headers=dashboard).status_code == 200, n
    listed = {
        k["key_id"]: k["rate_per_min"] for k in live.client.get("/v1/keys", headers=live.auth("admin")).json()
    }
    assert listed[app_id] == 6 and listed[live.keys["report"].split("_")[1]] is None


@pytest.mark.parametrize("live_overrides", [RATED])
def test_a_changed_rate_holds_from_the_keys_next_request(live: Live) -> None:
    """The service remembers a verified key for 30 s; its rate is read with the revocation on every
    use, so a rate lowered by another process (`streetorder keys rate`) or raised by the API holds
    at once, not when the memory lapses."""
    reader, key_id = live.auth("cases:read"), live.keys["cases:read"].split("_")[1]
    assert live.client.get("/v1/cases", headers=reader).status_code == 200  # remembered from now on
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STREETORDER_SECRET": SECRET}
    lowered = subprocess.run(
        [
            sys.executable,
            "-m",
            "serve.cli",
            "keys",
            "--db",
            live.settings.db_url,
            "rate",
            key_id,
            *("--rate-per-min", "1"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert lowered.returncode == 0, lowered.stderr
    assert live.client.get("/v1/cases", headers=reader).status_code == 200  # 1 a minute: 1.7 at once
    held = live.client.get("/v1/cases", headers=reader)
    assert held.status_code == 429 and "over its 1 requests a minute" in held.json()["detail"]
    assert int(held.headers["Retry-After"]) > 10  # 6 a minute would have one again within 10 s
    raised = live.client.patch(f"/v1/keys/{key_id}", json={"rate_per_min": 6000}, headers=live.auth("admin"))
    assert raised.status_code == 200 and raised.json()["rate_per_min"] == 6000
    time.sleep(0.2)  # 100 a second: 20 requests' worth
    assert live.client.get("/v1/cases", headers=reader).status_code == 200
    back = live.client.patch(f"/v1/keys/{key_id}", json={"rate_per_min": None}, headers=live.auth("admin"))
    assert back.status_code == 200 and back.json()["rate_per_min"] is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"rate_per_min": 0}',
        b'{"rate_per_min": -5}',
        b'{"rate_per_min": 100001}',
        b'{"rate_per_min": 100000000000000000000000000000}',
        b'{"rate_per_min": NaN}',
        b'{"rate_per_min": Infinity}',
        b'{"rate_per_min": 60.5}',
        b'{"rate_per_min": "600"}',
        b'{"rate_per_min": true}',
        b"{}",
    ],
)
def test_a_bad_rate_is_a_422_problem_and_changes_nothing(live: Live, body: bytes) -> None:
    admin = {**live.auth("admin"), "Content-Type": "application/json"}
    key_id = live.keys["report"].split("_")[1]
    before = live.client.get("/v1/keys", headers=admin).json()
    changed = live.client.patch(f"/v1/keys/{key_id}", content=body, headers=admin)
    assert changed.status_code == 422 and changed.headers["content-type"] == "application/problem+json"
    said = "NaN" if b"NaN" in body else "Infinity" if b"Infinity" in body else "rate_per_min"
    assert said in changed.json()["detail"]
    if body != b"{}":
        made = live.client.post(
            "/v1/keys", content=body[:-1] + b', "name": "x", "scopes": ["report"]}', headers=admin
        )
        assert made.status_code == 422 and said in made.json()["detail"]
    assert live.client.get("/v1/keys", headers=admin).json() == before
    missing = live.client.patch("/v1/keys/0123456789ab", json={"rate_per_min": 60}, headers=admin)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_the_key_rates_keep_a_bounded_memory(live: Live) -> None:
    live.state.key_rates.kept = 2
    for scope in ("admin", "report", "cases:read"):
        assert live.client.get("/v1/sessions/current", headers=live.auth(scope)).status_code == 200
    assert list(live.state.key_rates._buckets) == [
        live.keys[s].split("_")[1] for s in ("report", "cases:read")
    ]


def test_addresses_that_never_failed_take_no_memory(live: Live) -> None:
    """uvicorn takes X-Forwarded-For from 127.0.0.1 (its default, for a local proxy): a flood of
    made-up addresses must not swell the failure memory asked about on every request."""
    for n in range(200):
        assert live.client.get(
            "/healthz", headers={"X-Forwarded-For": f"10.9.{n // 250}.{n % 250}"}
        ).is_success
    assert len(live.state.client_failures._failures) == 0


def test_a_key_revoked_by_another_process_is_refused_on_its_next_use(live: Live) -> None:
    reader = live.auth("cases:read")
    assert live.client.get("/v1/cases", headers=reader).status_code == 200  # remembered from now on
    key_id = live.keys["cases:read"].split("_")[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STREETORDER_SECRET": SECRET}
    revoked = subprocess.run(
        [sys.executable, "-m", "serve.cli", "keys", "--db", live.settings.db_url, "revoke", key_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert revoked.returncode == 0, revoked.stderr
    refused = live.client.get("/v1/cases", headers=reader)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("path", "media", "more", "body"),
    [
        ("/v1/keys", b"application/json", b"", b'{"name": "x"'),
        ("/v1/keys", b"application/json", b"Idempotency-Key: k-1\r\n", b'{"name": "x"'),
        ("/v1/sessions", b"application/x-www-form-urlencoded", b"", b"username=a"),
    ],
)
def test_a_post_cut_short_leaves_no_traceback(
    live: Live, caplog: pytest.LogCaptureFixture, path: str, media: bytes, more: bytes, body: bytes
) -> None:
    host, port = live.base.removeprefix("http://").split(":")
    uvicorn_errors = logging.getLogger("uvicorn.error")  # uvicorn's own loggers do not reach the root
    uvicorn_errors.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            with socket.create_connection((host, int(port))) as conn:
                conn.sendall(
                    b"POST "
                    + path.encode()
                    + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    + media
                    + b"\r\nContent-Length: 1000\r\nX-API-Key: "
                    + live.keys["admin"].encode()
                    + b"\r\n"
                    + more
                    + b"\r\n"
                    + body
                )
                time.sleep(0.3)
            time.sleep(0.7)  # the service notices the closed connection
            assert live.client.get("/healthz").is_success
    finally:
        uvicorn_errors.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_500_is_a_generic_problem_with_an_incident_id_that_finds_the_log(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    admin = live.auth("admin")
    assert live.client.get("/v1/cases", headers=admin).status_code == 200
    database = Path(live.settings.db_url.removeprefix("sqlite:///"))
    with sqlite3.connect(database) as other:  # a restore gone wrong under the running service
        other.execute("ALTER TABLE cases RENAME TO cases_elsewhere")
    with caplog.at_level(logging.ERROR, logger="streetorder.errors"):
        failed = live.client.get("/v1/cases", headers=admin)
    assert failed.status_code == 500 and failed.headers["content-type"] == "application/problem+json"
    body = failed.json()
    incident = body["incident"]
    assert len(incident) == 12 and incident in body["detail"]
    for leak in ("sqlite", "SELECT", "Traceback", str(database.parent), "cases.db", SECRET):
        assert leak.lower() not in failed.text.lower(), leak
    (logged,) = [r for r in caplog.records if incident in r.getMessage()]
    assert logged.exc_info is not None  # the detail is in the log, under the id the caller was given


def test_another_origin_is_granted_nothing(live: Live) -> None:
    evil = {"Origin": "https://evil.example"}
    preflight = live.client.options(
        "/v1/cases",
        headers={
            **evil,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-api-key",
        },
    )
    read = live.client.get("/v1/cases", headers={**evil, **live.auth("cases:read")})
    for answer in (preflight, read):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]


def filed(live: Live) -> int:
    """A case filed by a citizen's Open311 request; its id."""
    posted = live.client.post(
        "/open311/v2/requests.json", data={"service_code": "06010", **PLACE}, headers=live.auth("report")
    )
    assert posted.status_code == 201, posted.text
    return int(live.client.get("/v1/cases", headers=live.auth("admin")).json()["items"][0]["id"])


@pytest.mark.parametrize(
    ("path", "form", "named"),
    [
        # the last value was heard: a 06042 case filed where a proxy's log read 06010
        ("/open311/v2/requests.json", {"service_code": ["06010", "06042"], **PLACE}, "service_code"),
        (
            "/open311/v2/requests.json",
            {"service_code": "06010", "lat": [PLACE["lat"], 1], "long": PLACE["long"]},
            "lat",
        ),
        # the photo was kept as the after-photo a handling may stand on, sent as a "near" one too
        ("/v1/cases/{case_id}/evidence", {"role": ["near", "after"]}, "role"),
        (
            "/v1/reports",
            {"lat": [PLACE["lat"], 1], "lon": PLACE["long"], "taken_at": "2025-09-30T10:00:00+08:00"},
            "lat",
        ),
    ],
)
def test_a_form_that_sends_one_name_twice_is_refused_and_changes_nothing(
    live: Live, path: str, form: dict[str, object], named: str
) -> None:
    case_id = filed(live)
    admin = live.auth("admin")
    before = live.client.get(f"/v1/cases/{case_id}", headers=admin).json()
    files = {"file": ("a.jpg", photo(), "image/jpeg")} if path.startswith("/v1/") else None
    path = path.format(case_id=case_id)
    refused = live.client.post(path, data=form, files=files, headers=admin)
    detail = assert_problem(refused, 400 if path.startswith("/open311/") else 422)["detail"]
    assert f"{named}: sent 2 times" in detail, detail
    assert live.client.get(f"/v1/cases/{case_id}", headers=admin).json() == before
    assert live.client.get("/v1/cases", headers=admin).json()["total"] == 1
    once = {name: value[0] if isinstance(value, list) else value for name, value in form.items()}
    if path.startswith("/v1/reports"):
        return  # no model here: the door answers 503 past the form
    taken = live.client.post(path, data=once, files=files, headers=admin)
    assert taken.status_code == 201, taken.text


@pytest.mark.parametrize(
    ("body", "named"),
    [
        # each was a 400 "There was an error parsing the body" that named no cause
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"name": "x", "scopes": ["detect"], "rate_per_min": ' + b"9" * 5000 + b"}", "5000 digits"),
        (b'{"name": "\xff\xfe", "scopes": ["detect"]}', "not UTF-8"),
    ],
    ids=["deep", "digits", "latin1"],
)
def test_json_no_parser_can_read_is_a_422_naming_why(live: Live, body: bytes, named: str) -> None:
    admin = {**live.auth("admin"), "Content-Type": "application/json"}
    keys = live.client.get("/v1/keys", headers=admin).json()
    assert named in assert_problem(live.client.post("/v1/keys", content=body, headers=admin), 422)["detail"]
    assert live.client.get("/v1/keys", headers=admin).json() == keys


@pytest.mark.parametrize("operator", ["adm\u202enimda", "巡查员\u200b", "a\nb", "   "], ids=repr)
def test_an_operator_name_not_shown_as_itself_is_refused_by_the_rule_for_names(
    live: Live, operator: str
) -> None:
    """A key acting for people names them in the flow log: a U+202E there showed another name."""
    case_id = filed(live)
    read = live.client.get(f"/v1/cases/{case_id}", headers=live.auth("admin"))
    writer = {**live.auth("admin"), "If-Match": read.headers["ETag"]}
    body = {"action": "confirm", "note": "属实", "operator": operator}
    refused = live.client.post(f"/v1/cases/{case_id}/transitions", json=body, headers=writer)
    assert "operator" in assert_problem(refused, 422)["detail"]
    assert (
        live.client.get(f"/v1/cases/{case_id}", headers=live.auth("admin")).headers["ETag"]
        == read.headers["ETag"]
    )
    confirmed = live.client.post(
        f"/v1/cases/{case_id}/transitions", json={**body, "operator": "王芳"}, headers=writer
    )
    assert confirmed.status_code == 200 and confirmed.json()["flow"][-1]["operator"] == "王芳", confirmed.text


ALIASES = ["+{id}", "%20{id}", "{id}.0", "{id}_0", "{id}%20", "٣"]


@pytest.mark.parametrize(
    "template",
    ["/v1/cases/{case}", "/v1/evidence/{case}", "/open311/v2/media/{case}.jpg", "/v1/supervision/{case}"],
)
def test_an_id_in_a_path_is_its_digits_and_no_alias(live: Live, template: str) -> None:
    """`/v1/cases/+1`, `/v1/cases/%201`, `/v1/cases/1.0` read case 1 and `/v1/cases/1_0` case 10:
    one row at many paths, which a proxy's rule or a cache keyed by the path tells apart."""
    case_id = filed(live)
    admin = live.auth("admin")
    for alias in ALIASES:
        path = template.format(case=alias.format(id=case_id))
        if template.startswith("/v1/supervision"):
            answer = live.client.patch(path, json={}, headers=admin)
        else:
            answer = live.client.get(path, headers=admin)
        assert "digits only" in assert_problem(answer, 400, 422)["detail"], path
    assert live.client.get(f"/v1/cases/{case_id}", headers=admin).status_code == 200


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        # the last was read: a monitor's log of `since=2026-01-01` showed November's cases as the year's
        ("/v1/cases", "since=2026-01-01&since=2026-11-01", "since"),
        ("/v1/cases.geojson", "crs=gcj02&crs=bd09", "crs"),
        ("/v1/ledger.csv", "street=a&department=b&street=c", "street"),
        ("/v1/stats/ranking", "day=2026-11-01&day=2026-11-02", "day"),
        ("/open311/v2/requests.json", "status=open&status=closed", "status"),
    ],
)
def test_a_query_giving_a_one_valued_parameter_twice_is_a_problem(
    live: Live, path: str, query: str, named: str
) -> None:
    answer = live.client.get(f"{path}?{query}", headers=live.auth("admin"))
    detail = assert_problem(answer, 400 if path.startswith("/open311/") else 422)["detail"]
    assert f"{named}: given 2 times" in detail, detail
    several = live.client.get("/v1/cases?state=reported&state=filed", headers=live.auth("admin"))
    assert several.status_code == 200, several.text  # a list parameter repeats, as the API says


UNFRAMED = [  # requests h11 cannot frame: uvicorn answered each with a text/plain 400
    b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 36\r\n\r\n{}",
    b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
    b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"GET /v1/cases HTTP/1.1\r\nHost: x\r\nX-API-Key: a\x00b\r\n\r\n",
    b"GET /v1/cases/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
]


def test_a_request_http_cannot_frame_is_a_problem_document_and_the_service_goes_on(tmp_path: Path) -> None:
    with running_service(
        f"sqlite:///{tmp_path / 'cases.db'}", tmp_path, env={"STREETORDER_MODEL": "none"}
    ) as live:
        host, port = live.base.removeprefix("http://").split(":")
        for request in UNFRAMED:
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                conn.sendall(request)
                answer = b""
                while chunk := conn.recv(65536):  # the service closes the connection after its answer
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400"), (request, answer[:300])
            assert b"content-type: application/problem+json" in head.lower(), (request, head)
            problem = json.loads(body)
            assert problem["status"] == 400 and problem["title"] and "RFC 9112" in problem["detail"]
        assert httpx.get(f"{live.base}/v1/cases", headers=live.auth("cases:read")).status_code == 200


@pytest.mark.parametrize("twin", ["Boss", "BOSS", "bosS"])
def test_a_username_that_differs_from_another_in_case_only_is_refused(live: Live, twin: str) -> None:
    """`Boss` was created beside the admin `boss`: two accounts that read as one person."""
    admin = live.auth("admin")
    made = live.client.post(
        "/v1/users", json={"username": "boss", "password": "0123456789", "role": "admin"}, headers=admin
    )
    assert made.status_code == 201, made.text
    people = live.client.get("/v1/users", headers=admin).json()
    body = {"username": twin, "password": "0123456789", "role": "operator"}
    refused = live.client.post("/v1/users", json=body, headers=admin)
    assert "'boss' exists (names differ in case only)" in assert_problem(refused, 409)["detail"]
    assert live.client.get("/v1/users", headers=admin).json() == people


CONTROLS = "\x1b[2J\x1b]0;owned\x07\x7f\n"  # a terminal's clear-screen and title escapes, DEL, a newline


def test_client_text_a_problem_echoes_shows_its_control_characters_escaped(live: Live) -> None:
    """A stale If-Match, an unknown service code or token, a photo's file name: each echoed in the
    problem's detail as sent, ESC and DEL included, reached whatever terminal or log read the
    answer (a clear-screen, a forged title, a forged line). They are shown escaped; text that shows
    as itself is named as before."""
    case_id = filed(live)
    reader = live.auth("admin")
    stale = f'"7"{CONTROLS.rstrip()}'  # a header ends at a newline: no line of its own to forge
    answers = {
        "If-Match": live.client.post(
            f"/v1/cases/{case_id}/transitions",
            json={"action": "confirm"},
            headers={**reader, "If-Match": stale},
        ),
        "service_code": live.client.post(
            "/open311/v2/requests.json",
            data={"service_code": f"06010{CONTROLS}", **PLACE},
            headers=live.auth("report"),
        ),
        "service": live.client.get(f"/open311/v2/services/06010{quote(CONTROLS)}.json"),
        "token": live.client.get(f"/open311/v2/tokens/t{quote(CONTROLS)}.json"),
        "file name": live.client.post(
            f"/v1/cases/{case_id}/evidence",
            files={"file": (f"p{CONTROLS}.jpg", b"plain text", "text/plain")},
            data={"role": "near"},
            headers=live.auth("admin"),
        ),
        "unreadable photo": live.client.post(
            f"/v1/cases/{case_id}/evidence",
            files={"file": (f"p{CONTROLS}.jpg", b"\xff\xd8\xff\xe0 not a whole JPEG", "image/jpeg")},
            data={"role": "near"},
            headers=live.auth("admin"),
        ),
    }
    statuses = {"If-Match": 412, "service_code": 400, "service": 404, "token": 404}
    for what, answer in answers.items():
        detail = assert_problem(answer, statuses.get(what, 400), 415)["detail"]
        assert not any(char in detail for char in "\x1b\x07\x7f\n"), (what, detail)
        # (a client sends a file name's BEL and newline percent-encoded, its ESC and DEL as they are)
        assert "\\x1b[2J\\x1b]0;owned" in detail and "\\x7f" in detail, (what, detail)
    assert answers["If-Match"].json()["detail"].startswith(f"If-Match {stale!r} does not match")
    plain = live.client.post(
        f"/v1/cases/{case_id}/transitions", json={"action": "confirm"}, headers={**reader, "If-Match": '"7"'}
    )
    assert assert_problem(plain, 412)["detail"].startswith('If-Match "7" does not match'), plain.text
