"""`streetorder serve` as a user starts it: a real uvicorn on 127.0.0.1, a key from `streetorder keys`,
and `streetorder stats` on the same database; plus the OpenAPI contract (every field described)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import Service

from serve.cli.bench_load import wait_until_up

ROOT = Path(__file__).resolve().parents[1]
SECRET = "serve-test-secret-0123456789"


def streetorder(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "serve.cli.main", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_keys_and_stats_modes_end_to_end(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "STREETORDER_SECRET": SECRET, "STREETORDER_EVIDENCE_DIR": str(tmp_path / "evidence")}
    refused = streetorder("serve", "--db", db_url, env={**env, "STREETORDER_SECRET": ""})
    assert refused.returncode == 1 and "STREETORDER_SECRET" in refused.stderr

    scopes = ("--scope", "report", "--scope", "cases:read")
    created = streetorder("keys", "--db", db_url, "create", *scopes, env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serve.cli.main",
            "serve",
            "--port",
            str(port),
            "--db",
            db_url,
            "--log-level",
            "error",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(base, server, 60), "service did not start"
        headers = {"X-API-Key": key}
        assert httpx.get(f"{base}/v1/cases").status_code == 401
        posted = httpx.post(
            f"{base}/open311/v2/requests.json",
            data={"service_code": "06042", "lat": 34.72265, "long": 113.62762},
            headers=headers,
        )
        assert posted.status_code == 201, posted.text
        cases = httpx.get(f"{base}/v1/cases", headers=headers).json()["items"]
        assert [c["event"] for c in cases] == ["overflowing_bin"]
        escalate = httpx.post(f"{base}/v1/keys", json={"name": "x", "scopes": ["admin"]}, headers=headers)
        assert escalate.status_code == 403
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert server.returncode in (0, -15) and "Traceback" not in output, output  # uvicorn re-raises SIGTERM

    stats = streetorder("stats", "--db", db_url, "--group-by", "grid", env=env)
    assert stats.returncode == 0, stats.stderr
    result = json.loads(stats.stdout)
    assert result["total"]["reports"] == 1 and result["groups"][0]["key"] == "410103001001005"
    listed = streetorder("keys", "--db", db_url, "list", env=env)
    assert key.split("_")[1] in listed.stdout and key not in listed.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_schema_field_and_operation_is_described(service: Service) -> None:
    document = service.client.get("/openapi.json").json()
    for name, schema in document["components"]["schemas"].items():
        if name in ("HTTPValidationError", "ValidationError") or name.startswith("Body_"):
            continue
        for field, spec in schema.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field} has no description"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "header" or parameter["name"] not in ("authorization", "x-api-key"):
                    assert parameter.get("description"), f"{method.upper()} {path}: {parameter['name']}"
