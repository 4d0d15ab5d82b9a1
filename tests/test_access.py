"""Access: every route of the app declares the scope it needs (read back from the app itself, not
from a list kept by hand), the few public ones are listed here on purpose, and each guarded route
refuses a key without its scope. Stream URLs are limited to allowed schemes wherever they come from.

Hashed keys, 401/403 details and the audit log of case changes are in test_auth.py and
test_api_lifecycle.py; evidence path confinement and blurring in test_privacy.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from configured import TAXONOMY
from conftest import Service
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from serve.api.app import create_app
from serve.cases.auth import SCOPES
from serve.cases.settings import Settings
from vision.live.cameras import CameraConfigError, parse_cameras
from vision.live.stream import STREAM_SCHEMES, StreamReader

ROOT = Path(__file__).resolve().parents[1]

# Deliberately public, and why. Anything else without a scope is a mistake.
PUBLIC = {
    ("GET", "/healthz"): "liveness probe",
    ("GET", "/readyz"): "readiness probe (says only what is missing)",
    ("GET", "/openapi.json"): "the API description",
    ("GET", "/docs"): "Swagger UI page",
    ("GET", "/docs/assets/{name}"): "Swagger UI's script, style and icon and its start, from a fixed list",
    ("GET", "/"): "web console page; it calls the API with the key the person signs in with",
    ("GET", "/console/{name}"): "the console's own scripts and styles, from a fixed list",
    ("GET", "/sw.js"): "the console's service worker: the list of those files and their version",
    ("POST", "/v1/sessions"): "signing in: a user name and password open a session",
    ("GET", "/v1/sessions/current"): "who the caller is (a session or a key); 401 for nobody",
    ("DELETE", "/v1/sessions/current"): "signing out ends only the caller's own session",
    ("GET", "/open311/discovery.{fmt}"): "GeoReport v2: discovery is public",
    ("GET", "/open311/v2/services.{fmt}"): "GeoReport v2: the service list is public",
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): "GeoReport v2: a service definition is public",
    ("GET", "/open311/v2/requests.{fmt}"): "GeoReport v2: requests are public (no person named)",
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): "GeoReport v2: one request is public",
    ("GET", "/open311/v2/tokens/{token}.{fmt}"): "GeoReport v2: a token tells its request id",
    ("GET", "/open311/v2/media/{evidence_id}.jpg"): "GeoReport v2 media_url: faces and plates always blurred",
}


def all_routes(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, inside included routers too."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from all_routes(original.routes)
        else:
            yield route


def declared_scopes(route: APIRoute) -> set[str]:
    """Scopes declared with `Security(..., scopes=[...])` by the route's dependencies, at any depth.

    Every key check of the service (serve/api/deps.py and the routers' own) is such a dependency.
    """
    scopes: set[str] = set()
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        scopes |= set(dependency.own_oauth_scopes or ())
        pending.extend(dependency.dependencies)
    return scopes


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    folder = tmp_path_factory.mktemp("access")
    settings = Settings(
        db_url=f"sqlite:///{folder / 'access.db'}",
        secret="access-test-secret-0123456789",
        model="none",
        evidence_dir=folder / "evidence",
        annotations_dir=folder / "annotations",
    )
    return create_app(settings)


def operations(app: FastAPI) -> list[tuple[str, str, set[str]]]:
    found = []
    for route in all_routes(app.routes):
        methods = sorted((getattr(route, "methods", None) or set()) - {"HEAD"})
        scopes = declared_scopes(route) if isinstance(route, APIRoute) else set()
        found += [(method, getattr(route, "path", repr(route)), scopes) for method in methods]
    return found


def test_every_route_declares_a_scope_or_is_listed_public(app: FastAPI) -> None:
    found = operations(app)
    assert len(found) > 25
    for method, path, scopes in found:
        if (method, path) in PUBLIC:
            assert not scopes, f"{method} {path} is listed public but checks a key"
            continue
        assert scopes, f"{method} {path} needs no key and is not listed as deliberately public"
        assert len(scopes) == 1 and scopes <= set(SCOPES), f"{method} {path} declares {scopes}"


def concrete(path: str) -> str:
    return re.sub(r"{[^}]+}", "1", path)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_guarded_routes_refuse_missing_and_insufficient_keys(service: Service) -> None:
    """Live, for every guarded operation: no key 401, a key of another scope 403, admin passes the guard."""
    app = service.client.app
    checked = 0
    for method, path, scopes in operations(app):  # type: ignore[arg-type]
        if (method, path) in PUBLIC:
            continue
        (needed,) = scopes
        url = concrete(path)
        other = next(s for s in SCOPES if s not in (needed, "admin"))
        assert service.client.request(method, url).status_code == 401, f"{method} {path}"
        refused = service.client.request(method, url, headers=service.auth(other))
        assert refused.status_code == 403, f"{method} {path} with {other}: {refused.status_code}"
        allowed = service.client.request(method, url, headers=service.auth("admin"))
        assert allowed.status_code not in (401, 403), f"{method} {path} refused admin"
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_public_routes_answer_without_a_key_and_leak_no_files(service: Service) -> None:
    for method, path in PUBLIC:
        if "{" not in path and method == "GET" and "sessions" not in path:
            assert service.client.request(method, path).status_code in (200, 503), path  # readyz: no model
    assert service.client.get("/open311/discovery.json").status_code == 200
    assert service.client.get("/v1/sessions/current").status_code == 401
    for name in ("..%2F..%2Fserve%2Fsettings.py", "../settings.py", "%2Fetc%2Fpasswd"):
        assert service.client.get(f"/console/{name}").status_code == 404


def camera_with_stream(url: str) -> dict[str, Any]:
    zone = {"id": "walk", "rule": "lane", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}
    return {
        "rules": {"lane": {"detect": "objects", "classes": ["car"], "min_dwell_s": 60}},
        "cameras": [{"id": "cam-1", "lat": 34.75, "lon": 113.66, "stream": url, "zones": [zone]}],
    }


ALLOWED = [
    "rtsp://cam.local/1",
    "rtsps://cam.local/1",
    "http://cam/mjpg",
    "https://cam/h",
    "file:///v.mp4",
    "v.mp4",
]
REFUSED = [
    "ftp://host/x",
    "gopher://host/x",
    "data:video/mp4;base64,AAAA",
    "smb://share/x",
    "concat:/a.mp4|/b.mp4",
    "tcp://10.0.0.1:554",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("url", ALLOWED + REFUSED)
def test_stream_urls_are_limited_to_allowed_schemes(url: str) -> None:
    assert set(STREAM_SCHEMES) == {"rtsp", "rtsps", "http", "https", "file"}
    if url in ALLOWED:
        assert parse_cameras(camera_with_stream(url), TAXONOMY, Path("cams.yaml")).get("cam-1").stream == url
        return
    with pytest.raises(CameraConfigError, match=r"cams\.yaml: .*cameras\[0\]\.stream.*not allowed"):
        parse_cameras(camera_with_stream(url), TAXONOMY, Path("cams.yaml"))
    with pytest.raises(ValueError, match="not allowed"):
        StreamReader(url)


def test_watch_refuses_a_stream_flag_with_another_scheme(tmp_path: Path) -> None:
    import yaml

    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(yaml.safe_dump(camera_with_stream("rtsp://cam.local/1")), encoding="utf-8")
    done = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "serve.cli.main",
                "watch",
                "--camera",
                "cam-1",
                "--cameras",
                str(cameras),
            ),
            *("--stream", "ftp://evil/x", "--db", f"sqlite:///{tmp_path / 'w.db'}"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--stream ftp://evil/x: scheme 'ftp' is not allowed" in done.stderr
