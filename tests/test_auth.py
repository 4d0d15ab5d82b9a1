"""API keys and scopes: 401 without a good key, 403 without the scope, hashes at rest, every route
guarded, and no start with an unsafe secret."""

from __future__ import annotations

import contextlib
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Service
from sqlalchemy import select

from serve.api.app import create_app
from serve.cases.auth import KeyVerifier, SecretError, check_name, create_key, server_secret, split_key
from serve.cases.db import open_database, transaction
from serve.cases.errors import InvalidInput, Unauthorized
from serve.cases.orm import ApiKey
from serve.cases.settings import Settings
from serve.cli.keys import cli as keys_cli

OPEN_ROUTES = {
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/v1/sessions",  # signing in
}
# GeoReport v2's reads are public (the specification's; evidence behind media_url is served blurred)
OPEN_READS = {
    ("GET", path)
    for path in (
        "/open311/discovery.1",
        "/open311/v2/services.1",
        "/open311/v2/services/1.1",
        "/open311/v2/requests.1",
        "/open311/v2/requests/1.1",
        "/open311/v2/tokens/1.1",
        "/open311/v2/media/1.jpg",
    )
}

# (method, path, scope that suffices, a scope that does not)
GUARDED = [
    ("GET", "/v1/cases", "cases:read", "detect"),
    ("GET", "/v1/cases.geojson", "cases:read", "report"),
    ("GET", "/v1/stats", "cases:read", "cases:write"),
    ("GET", "/v1/departments", "cases:read", "detect"),
    ("GET", "/metrics", "cases:read", "report"),
    ("GET", "/v1/citizen-requests", "cases:read", "report"),
    ("GET", "/v1/keys", "admin", "cases:write"),
]


@pytest.mark.parametrize(("method", "path", "allowed", "refused"), GUARDED)
def test_scopes_decide(service: Service, method: str, path: str, allowed: str, refused: str) -> None:
    assert service.client.request(method, path).status_code == 401
    forbidden = service.client.request(method, path, headers=service.auth(refused))
    assert forbidden.status_code == 403
    if path.startswith("/open311/"):  # GeoReport v2 error list
        assert forbidden.json()[0]["code"] == 403 and allowed in forbidden.json()[0]["description"]
    else:
        assert forbidden.json()["required_scope"] == allowed
    assert service.client.request(method, path, headers=service.auth(allowed)).status_code == 200
    assert service.client.request(method, path, headers=service.auth("admin")).status_code == 200


# Changes of a case's evidence (method, path, body): cases:write, as the workflow steps; with a key
# of that scope the guard lets the request through to the case, which does not exist here (404).
EVIDENCE_CHANGES = [
    ("POST", "/v1/cases/1/evidence/1/detach", {"reason": "拍错了"}),
    ("POST", "/v1/cases/1/split", {"evidence_ids": [1], "reason": "另一处"}),
    ("POST", "/v1/cases/1/merge", {"case_id": 2, "reason": "同一处"}),
]


@pytest.mark.parametrize(("method", "path", "body"), EVIDENCE_CHANGES)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_evidence_changes_need_cases_write(
    service: Service, method: str, path: str, body: dict[str, object]
) -> None:
    headers = {"If-Match": "*"}
    assert service.client.request(method, path, json=body, headers=headers).status_code == 401
    for refused in ("cases:read", "report"):
        forbidden = service.client.request(
            method, path, json=body, headers={**headers, **service.auth(refused)}
        )
        assert forbidden.status_code == 403 and forbidden.json()["required_scope"] == "cases:write"
    for allowed in ("cases:write", "admin"):
        missing = service.client.request(
            method, path, json=body, headers={**headers, **service.auth(allowed)}
        )
        assert missing.status_code == 404 and missing.json()["detail"] == "case 1 does not exist"


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "no API key"),
        ({"Authorization": "Bearer not-a-key"}, "malformed"),
        ({"Authorization": "Bearer so_0123456789ab_wrongsecret"}, "unknown API key"),
        ({"X-API-Key": "so_0123456789ab_wrongsecret"}, "unknown API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "no API key"),
    ],
)
def test_missing_or_bad_keys_are_401(service: Service, headers: dict[str, str], detail: str) -> None:
    response = service.client.get("/v1/cases", headers=headers)
    assert response.status_code == 401 and detail in response.json()["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_x_api_key_header_and_a_wrong_secret_for_a_real_id(service: Service) -> None:
    key = service.keys["cases:read"]
    assert service.client.get("/v1/cases", headers={"X-API-Key": key}).status_code == 200
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert service.client.get("/v1/cases", headers={"X-API-Key": tampered}).status_code == 401


def test_keys_api_creates_once_shown_keys_and_revokes_at_once(service: Service) -> None:
    admin = service.auth("admin")
    created = service.client.post(
        "/v1/keys", json={"name": "console", "scopes": ["cases:read"]}, headers=admin
    )
    assert created.status_code == 201
    body = created.json()
    key, key_id = body["key"], body["key_id"]
    assert service.client.get("/v1/cases", headers={"X-API-Key": key}).status_code == 200
    listed = service.client.get("/v1/keys", headers=admin).json()
    assert key_id in [k["key_id"] for k in listed] and all("key" not in k for k in listed)
    bad_scope = service.client.post("/v1/keys", json={"name": "x", "scopes": ["root"]}, headers=admin)
    assert bad_scope.status_code == 422
    assert service.client.delete(f"/v1/keys/{key_id}", headers=admin).json()["revoked_at"] is not None
    revoked = service.client.get("/v1/cases", headers={"X-API-Key": key})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    with service.client.app.state.service.sessions() as session:  # type: ignore[attr-defined]
        row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).one()
    assert key.split("_", 2)[2] not in (row.hash, row.salt) and len(row.hash) == 64


def test_every_route_but_health_needs_a_key(service: Service) -> None:
    """Walk the OpenAPI document: every operation outside OPEN_ROUTES answers 401 without a key."""
    paths = service.client.get("/openapi.json").json()["paths"]
    operations = [(m.upper(), re.sub(r"{[^}]+}", "1", p)) for p, ops in paths.items() for m in ops]
    assert len(operations) > 20
    for method, path in operations:
        status = service.client.request(method, path).status_code
        public = path in OPEN_ROUTES or (method, path) in OPEN_READS
        assert (status != 401) == public, f"{method} {path} answered {status}"
        if not public:
            assert paths[next(p for p in paths if re.sub(r"{[^}]+}", "1", p) == path)][method.lower()][
                "security"
            ]


def test_verifier_rejects_keys_of_another_secret(tmp_path) -> None:
    factory = open_database(f"sqlite:///{tmp_path / 'keys.db'}")
    with transaction(factory) as session:
        key, _ = create_key(
            session, name="a", scopes=["detect"], pepper=b"first-secret", now=datetime.now(UTC)
        )
    with factory() as session:
        assert KeyVerifier(b"first-secret").verify(session, key).scopes == {"detect"}
        with pytest.raises(Unauthorized):
            KeyVerifier(b"other-secret").verify(session, key)
    assert split_key(key)[0] == key[3:15]


@pytest.mark.parametrize(
    ("secret", "dev", "starts"),
    [
        ("", False, False),
        ("changeme", False, False),
        ("short", False, False),
        ("", True, True),
        ("a-long-random-production-secret", False, True),
    ],
)
def test_unsafe_secret_refused_outside_dev_mode(tmp_path, secret: str, dev: bool, starts: bool) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'x.db'}", secret=secret, dev=dev)
    if starts:
        assert server_secret(settings) and create_app(settings).title == "streetorder"
    else:
        with pytest.raises(SecretError, match="STREETORDER_SECRET"):
            create_app(settings)


def test_keys_cli_creates_a_key_the_service_accepts(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREETORDER_SECRET", service.settings.secret)
    from serve.cases.settings import get_settings

    get_settings.cache_clear()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert (
            keys_cli(["--db", service.settings.db_url, "create", "--scope", "report", "--name", "hotline"])
            == 0
        )
    get_settings.cache_clear()
    key = out.getvalue().strip()
    response = service.client.get("/v1/cases", headers={"X-API-Key": key})
    assert response.status_code == 403  # report may post requests, not read cases
    posted = service.client.post(
        "/open311/v2/requests.json",
        data={"service_code": "07001", "lat": 34.7235, "long": 113.6265, "api_key": key},
    )
    assert posted.status_code == 201, posted.text


def test_keys_cli_takes_the_database_after_its_verb_too(
    service: Service, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`keys create --scope admin --name ops --db URL`, as a scan takes `--db` after its paths, was
    refused as an unrecognized argument; it creates the key in that database, and the later verbs
    take it there too."""
    monkeypatch.setenv("STREETORDER_SECRET", service.settings.secret)
    monkeypatch.chdir(tmp_path)  # a key put in the default database would land here, unseen
    from serve.cases.settings import get_settings

    get_settings.cache_clear()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            assert (
                keys_cli(["create", "--scope", "admin", "--name", "ops", "--db", service.settings.db_url])
                == 0
            )
            key = out.getvalue().strip()
            assert keys_cli(["list", "--db", service.settings.db_url]) == 0
    finally:
        get_settings.cache_clear()
    assert service.client.get("/v1/cases", headers={"X-API-Key": key}).status_code == 200
    assert key.split("_")[1] in out.getvalue().splitlines()[-1]
    assert not (tmp_path / "streetorder.db").exists()


def test_keys_cli_gives_a_key_its_own_rate_and_changes_it(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`keys create --rate-per-min N`, `keys rate ID --rate-per-min N | --by-scope`; `keys list`
    and GET /v1/keys show it; a rate of 0 or beyond the bound is refused and changes nothing."""
    monkeypatch.setenv("STREETORDER_SECRET", service.settings.secret)
    from serve.cases.settings import get_settings

    get_settings.cache_clear()
    db = ["--db", service.settings.db_url]

    def keys(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = keys_cli([*db, *argv])
        return code, out.getvalue(), err.getvalue()

    code, key, _ = keys("create", "--scope", "report", "--name", "bridge-60", "--rate-per-min", "7200")
    assert code == 0
    key_id = key.strip().split("_")[1]
    (line,) = [line for line in keys("list")[1].splitlines() if line.startswith(key_id)]
    assert "7200/min" in line and "report" in line
    assert keys("rate", key_id, "--rate-per-min", "0") == (
        1,
        "",
        "streetorder keys: rate_per_min: 1 to 100000 requests a minute, got 0\n",
    )
    assert keys("rate", key_id, "--rate-per-min", "100001")[0] == 1
    assert keys("create", "--scope", "report", "--rate-per-min", "-1")[0] == 1
    assert keys("rate", "0123456789ab", "--rate-per-min", "60")[0] == 1  # no such key
    listed = service.client.get("/v1/keys", headers=service.auth("admin")).json()
    assert [k["rate_per_min"] for k in listed if k["key_id"] == key_id] == [7200]
    assert len(listed) == len([line for line in keys("list")[1].splitlines() if line])  # -1 made none
    code, said, _ = keys("rate", key_id, "--by-scope")
    assert code == 0 and "the rate of its scopes" in said
    (line,) = [line for line in keys("list")[1].splitlines() if line.startswith(key_id)]
    assert "by scope" in line
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("王芳", None),
        ("Wang Fang (east district)", None),
        ("\u5f20\u200d\u4e09", "U+200D"),  # a zero-width joiner: invisible
        ("", "not only spaces"),
        ("   ", "not only spaces"),
        ("\u3000", "not only spaces"),  # an ideographic space
        ("a" * 65, "1 to 64"),
        ("ops\nroot  admin  active", "U+000A"),
        ("ops\x1b[2J", "U+001B"),
        ("\u202enimda", "U+202E"),  # shows as "admin"
        ("wang\u200b", "U+200B"),  # a zero-width space: two names that look the same
        ("a\u2028b", "U+2028"),
        ("\ue000", "U+E000"),
        ("\U000e0001", "U+E0001"),
    ],
)
def test_a_name_people_read_is_shown_as_itself(name: str, refused: str | None) -> None:
    if refused is None:
        assert check_name("display_name", name) == name
        return
    with pytest.raises(InvalidInput, match=re.escape(refused)) as error:
        check_name("display_name", name)
    assert error.value.extra["field"] == "display_name"
