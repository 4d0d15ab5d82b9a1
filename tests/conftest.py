"""Shared fixtures. Keep each one small and say which tests need it."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from serve.cases.settings import Settings

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

# --- PostgreSQL: a real throw-away server, for the storage and API tests (issue 5) ---------------


def find_postgres_bin() -> Path | None:
    """The folder with initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True)
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app on a real uvicorn at 127.0.0.1 (in a thread, lifespan run); yields its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "service did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Start a private PostgreSQL on 127.0.0.1 for the session; yields its URL without a database.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (or
    `nobody`). fsync is off: the data is thrown away, and tests stay quick.
    """
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server not found (no pg_ctl on PATH or in /usr/lib/postgresql/*/bin); "
            "install it with `apt-get install -y postgresql` (make test does)"
        )
    root = Path(tempfile.mkdtemp(prefix="streetorder-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user)
        prefix = ["runuser", "-u", user, "--"]
    data, port = root / "data", _free_port()
    log = root / "server.log"
    subprocess.run(
        [
            *prefix,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    started = subprocess.run(
        [
            *prefix,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log.read_text(errors='replace')}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(
        server_url.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    ) as conn:
        conn.execute(sql)  # type: ignore[arg-type]  # names below are generated here, not user input


def give_up_lock_waits_after(db_url: str, timeout: str) -> None:
    """PostgreSQL: connections opened from now on give up a lock wait after `timeout` (lock_timeout,
    55P03), as a deadlock or a serialization failure gives up, at once; nothing on SQLite (its
    busy_timeout, 30 s, is the engine's)."""
    if db_url.startswith("postgresql"):
        name = db_url.rsplit("/", 1)[1]
        _admin(db_url.rsplit("/", 1)[0], f"ALTER DATABASE {name} SET lock_timeout = '{timeout}'")


def postgresql_read_only(db_url: str, on: bool) -> None:
    """PostgreSQL: connections opened from now on may not write (`default_transaction_read_only`, as
    a hot standby after a failover refuses them: SQLSTATE 25006, which psycopg raises as an
    InternalError, not an OperationalError), or may again."""
    name = db_url.rsplit("/", 1)[1]
    _admin(
        db_url.rsplit("/", 1)[0],
        f"ALTER DATABASE {name} SET default_transaction_read_only = {'on' if on else 'off'}",
    )


@contextmanager
def another_writer_holding(db_url: str, until: Callable[[], bool], *, intake: bool = False) -> Iterator[None]:
    """Another connection holds what the writers here write from the start of the block until
    `until()` is true (or the block ends): on PostgreSQL every case row (FOR UPDATE, as another
    writer's step or duplicate rule holds one), on SQLite the write lock (BEGIN IMMEDIATE).
    `intake`: on PostgreSQL the intake's lock too (the case counters, which every finding takes
    first, a new case's too; readers go on), as another process's long intake holds it."""
    import sqlite3

    import psycopg

    holding, done = threading.Event(), threading.Event()

    def hold() -> None:  # in a thread of its own: the connection is opened and closed here
        connection: sqlite3.Connection | psycopg.Connection[tuple[object, ...]]
        if db_url.startswith("sqlite"):
            connection = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")
        else:
            connection = psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql"))
            connection.execute("SELECT id FROM cases FOR UPDATE")
            if intake:
                connection.execute("LOCK TABLE case_counters IN EXCLUSIVE MODE")
        holding.set()
        try:
            while not done.is_set() and not until():
                time.sleep(0.05)
        finally:
            connection.rollback()
            connection.close()

    thread = threading.Thread(target=hold, name="another writer")
    thread.start()
    try:
        assert holding.wait(60), "the other writer did not get its lock"
        yield
    finally:
        done.set()
        thread.join(60)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, once on SQLite and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cases.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(server, f"CREATE DATABASE {name}")
    try:
        yield f"{server}/{name}"
    finally:
        _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- the case service over real HTTP (TestClient), on both databases (issue 5) ------------------


class Clock:
    """The service's clock (when requests arrive); a test moves it to replay a working day."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Service:
    client: TestClient
    clock: Clock
    keys: dict[str, str]  # scope -> a key with only that scope ("admin": everything)
    settings: Settings

    def auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def transition(self, case_id: int, action: str, **fields: object) -> httpx.Response:
        """One workflow step (scope cases:write) with the ETag just read; the response, unchecked."""
        etag = self.client.get(f"/v1/cases/{case_id}", headers=self.auth("cases:read")).headers["ETag"]
        return self.client.post(
            f"/v1/cases/{case_id}/transitions",
            json={"action": action, **fields},
            headers={**self.auth("cases:write"), "If-Match": etag},
        )


SERVICE_START = datetime(2025, 9, 30, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Tuesday


@pytest.fixture
def cli_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The cache_dir setting of the CLI (`main`, get_settings) in tmp_path, never the user's
    ~/.cache/streetorder: for CLI tests whose commands cache (the holdout's looks)."""
    from serve.cases.settings import get_settings

    cache = tmp_path / "cache"
    monkeypatch.setenv("STREETORDER_CACHE_DIR", str(cache))
    get_settings.cache_clear()
    yield cache
    get_settings.cache_clear()


@pytest.fixture
def service_overrides() -> dict[str, object]:
    """Settings a test module changes for its `service` (override this fixture in the module)."""
    return {}


@pytest.fixture
def service(db_url: str, tmp_path: Path, service_overrides: dict[str, object]) -> Iterator[Service]:
    """The real app (the registry's current model) with one key per scope, clock at SERVICE_START."""
    from fastapi.testclient import TestClient

    from serve.api.app import create_app
    from serve.cases.auth import SCOPES, create_key
    from serve.cases.db import transaction

    defaults = {
        "secret": "tests-only-secret-0123456789",
        "evidence_dir": tmp_path / "evidence",
        "annotations_dir": tmp_path / "annotations",
        "max_upload_mb": 1,
        "key_rate_per_min": 100_000_000,  # tests send as fast as they can; test_hostile_http tests the rate
    }
    settings = Settings.model_validate({**defaults, **service_overrides, "db_url": db_url})
    clock = Clock(SERVICE_START)
    with TestClient(create_app(settings, clock=clock)) as client:
        state = client.app.state.service  # type: ignore[attr-defined]
        keys = {}
        with transaction(state.sessions) as session:
            for scope in SCOPES:
                keys[scope], _ = create_key(
                    session,
                    name=f"{scope}-user",
                    scopes=[scope],
                    pepper=state.verifier.pepper,
                    now=SERVICE_START,
                )
        yield Service(client, clock, keys, settings)


def _jpeg(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    image[height // 4 : height // 2, width // 4 : width // 2] = (40, 200, 230)
    for _ in range(
        3 if seed else 0
    ):  # other seeds, other pictures (not near-identical copies: 10+ bits apart)
        x, y = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
        image[y : y + height // 4, x : x + width // 4] = rng.integers(0, 256, 3)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def on_site(data: bytes, lat: float, lon: float, taken_at: datetime, pillow_format: str = "JPEG") -> bytes:
    """The JPEG re-saved (as `pillow_format`) with EXIF GPS and capture time: an after-photo taken at
    the case's place after it was filed, as verified closing asks (serve/cases/closing.py)."""
    import io

    from PIL import Image

    from vision.core.imageio import Position, exif_for

    out = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        exif = exif_for(position=Position(lat, lon), taken_at=taken_at)
        image.save(out, pillow_format, quality=95, exif=exif)
    return out.getvalue()


@pytest.fixture
def jpeg() -> Callable[..., bytes]:
    """jpeg(width, height, seed): a small real JPEG (noise and a bright block), written with OpenCV."""
    return _jpeg


# --- two real models and a registry, for hot reload (issue 7) --------------------------------------


@pytest.fixture(scope="session")
def _two_tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthetic import tiny_model

    from vision.detect.registry import read_card, write_card
    from vision.modelops.export import export_model

    folder = tmp_path_factory.mktemp("two-models")
    tiny = tiny_model(folder)
    other = folder / "tiny-96"
    other.mkdir()
    shutil.copy(tiny / "model.pt", other / "model.pt")
    write_card(other, {**read_card(tiny), "name": other.name, "input_size": 96})
    export_model(other, "onnx", imgsz=96)
    return folder


@pytest.fixture
def tiny_models(_two_tiny_models: Path, tmp_path: Path) -> Path:
    """models/ with `tiny` (current; one epoch on synthetic rectangles at 64 px, tests/synthetic.py)
    and `tiny-96`: its weights exported for 96 px input, current before it (a rollback returns to
    it). Two real models with different weights files, made by the tests, so no test depends on a
    shipped model's weights."""
    from vision.modelops.promote import Registry

    folder = tmp_path / "models"
    shutil.copytree(_two_tiny_models, folder)
    registry = Registry(folder)
    registry.record({"at": "2025-09-30T00:00:00+00:00", "action": "initial", "model": "tiny-96"}, "tiny-96")
    registry.record({"at": "2025-10-01T00:00:00+00:00", "action": "force", "model": "tiny"}, "tiny")
    return folder
