"""Abuse that must neither duplicate, leak nor swell (issue 31, points 3, 4 and 6), over real HTTP
(the app through TestClient, SQLite, the real model):

- a retried POST with the same Idempotency-Key creates nothing twice, on every creating route;
- an `api_key` in a query string never reaches the access log;
- image responses carry `nosniff` and a sandboxing CSP, so a JPEG/HTML polyglot stays a JPEG; no
  HTML page (console, /docs) can be framed by another site;
- a huge but legal photo is decoded reduced where full pixels serve no purpose;
- blurred and annotated evidence is made once and kept.
"""

from __future__ import annotations

import logging
import resource
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from conftest import Service, postgresql_read_only, serving
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError
from test_api_lifecycle import PLACE, report
from unwritable import held_open, read_only

from serve.cases.db import is_busy, is_storage_full, make_engine
from serve.cases.orm import ApiKey, Evidence


def jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A mostly flat real JPEG (small on the wire even when huge in pixels), with a noisy corner."""
    image = np.full((height, width, 3), 120, np.uint8)
    image[:64, :64] = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def add_photo_answer(service: Service, case_id: int, data: bytes, role: str = "near") -> httpx.Response:
    return service.client.post(
        f"/v1/cases/{case_id}/evidence",
        files={"file": ("photo.jpg", data, "image/jpeg")},
        data={"role": role},
        headers=service.auth("cases:write"),
    )


def add_photo(service: Service, case_id: int, data: bytes, role: str = "near") -> dict[str, Any]:
    added = add_photo_answer(service, case_id, data, role)
    assert added.status_code == 201, added.text
    return dict(added.json())


def rows(service: Service, table: type) -> int:
    sessions = service.client.app.state.service.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_retried_post_with_its_idempotency_key_creates_nothing_twice(service: Service) -> None:
    case_id = report(service)
    writer = {**service.auth("cases:write"), "Idempotency-Key": "after-photo-1"}
    upload = {"file": ("after.jpg", jpeg(320, 240, 1), "image/jpeg")}
    before = rows(service, Evidence)
    first = service.client.post(
        f"/v1/cases/{case_id}/evidence", files=upload, data={"role": "after"}, headers=writer
    )
    again = service.client.post(
        f"/v1/cases/{case_id}/evidence", files=upload, data={"role": "after"}, headers=writer
    )
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert rows(service, Evidence) == before + 1
    other = {"file": ("after.jpg", jpeg(320, 240, 2), "image/jpeg")}
    reused = service.client.post(
        f"/v1/cases/{case_id}/evidence", files=other, data={"role": "after"}, headers=writer
    )
    assert reused.status_code == 422 and reused.json()["title"] == "idempotency key reused"
    assert rows(service, Evidence) == before + 1
    # another caller's same key is its own
    admin = {**service.auth("admin"), "Idempotency-Key": "after-photo-1"}
    theirs = service.client.post(
        f"/v1/cases/{case_id}/evidence", files=upload, data={"role": "after"}, headers=admin
    )
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers

    # a new key is shown once: its replay creates no second key and does not show it again
    keys_before = rows(service, ApiKey)
    admin = {**service.auth("admin"), "Idempotency-Key": "new-key-1"}
    made = service.client.post("/v1/keys", json={"name": "bureau", "scopes": ["detect"]}, headers=admin)
    replayed = service.client.post("/v1/keys", json={"name": "bureau", "scopes": ["detect"]}, headers=admin)
    assert made.status_code == replayed.status_code == 201 and made.json()["key"].startswith("so_")
    assert replayed.json()["key_id"] == made.json()["key_id"] and "key" not in replayed.json()
    assert rows(service, ApiKey) == keys_before + 1
    too_long = service.client.post(
        "/v1/keys", json={"name": "x", "scopes": ["detect"]}, headers={**admin, "Idempotency-Key": "k" * 129}
    )
    assert too_long.status_code == 422 and rows(service, ApiKey) == keys_before + 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_api_key_in_the_query_never_reaches_the_access_log(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    key = service.keys["cases:read"]
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logging.getLogger("uvicorn.access").info(  # the line uvicorn writes for every request
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:50000",
            "GET",
            f"/open311/v2/requests.json?api_key={key}&status=open",
            "1.1",
            200,
        )
    assert key not in caplog.text and "api_key=[redacted]&status=open" in caplog.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_image_responses_are_never_sniffed(service: Service) -> None:
    case_id = report(service)
    polyglot = jpeg(320, 240, 3) + b"<html><script>alert(1)</script></html>"
    added = add_photo(service, case_id, polyglot)
    for headers in (service.auth("admin"), service.auth("cases:read")):  # raw bytes, and blurred
        served = service.client.get(added["url"], headers=headers)
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in served.headers["Content-Security-Policy"]
    assert service.client.get("/healthz").headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("service_overrides", [{"max_upload_mb": 4}])
def test_a_huge_legal_photo_is_decoded_reduced_and_answered_in_its_own_pixels(service: Service) -> None:
    huge = jpeg(8000, 6000, 4)
    detected = service.client.post(
        "/v1/detect", files={"file": ("huge.jpg", huge, "image/jpeg")}, headers=service.auth("detect")
    )
    if detected.status_code == 503:
        pytest.skip("no model loaded: " + detected.text)
    assert detected.status_code == 200, detected.text
    assert (detected.json()["width"], detected.json()["height"]) == (8000, 6000)
    case_id = report(service)
    added = add_photo(service, case_id, huge)
    served = service.client.get(added["url"], params={"boxes": "true"}, headers=service.auth("cases:read"))
    shown = cv2.imdecode(np.frombuffer(served.content, np.uint8), cv2.IMREAD_COLOR)
    assert served.status_code == 200 and shown.shape[:2] == (1500, 2000)  # libjpeg at 1/4


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_annotated_evidence_is_made_once_and_kept(service: Service) -> None:
    case_id = report(service)
    added = add_photo(service, case_id, jpeg(640, 480, 5))
    url, reader = added["url"], service.auth("cases:read")
    first = service.client.get(url, params={"boxes": "true"}, headers=reader)
    kept = list((service.settings.evidence_dir / "rendered" / "boxes").rglob("*.jpg"))
    assert first.status_code == 200 and len(kept) == 1
    marker = jpeg(96, 96, 6)
    kept[0].write_bytes(marker)  # the kept file, not a new rendering, serves the next reader
    again = service.client.get(url, params={"boxes": "true"}, headers=reader)
    assert again.content == marker
    raw = service.client.get(url, params={"boxes": "true"}, headers=service.auth("admin"))
    assert raw.status_code == 200 and raw.headers["X-Privacy"] == "raw"
    assert len(list((service.settings.evidence_dir / "rendered" / "boxes").rglob("*.jpg"))) == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_client_sending_bad_keys_is_refused_with_429_after_twenty(service: Service) -> None:
    real_id = service.keys["cases:read"].split("_")[1]
    bad = [f"so_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}" for _ in range(19)]
    bad.append(f"so_{real_id}_{secrets.token_urlsafe(32)}")  # a real key id, a wrong secret: one hash
    for key in bad:
        refused = service.client.get("/v1/cases", headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 401 and refused.json()["detail"] == "unknown API key"
    limited = service.client.get("/v1/cases", headers={"Authorization": f"Bearer {bad[0]}"})
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["content-type"] == "application/problem+json"
    assert service.client.get("/v1/cases", headers=service.auth("cases:read")).status_code == 429
    service.client.app.state.service.client_failures.succeeded("testclient")  # type: ignore[attr-defined]
    assert service.client.get("/v1/cases", headers=service.auth("cases:read")).status_code == 200


@pytest.mark.parametrize("name", ["bureau\nkey 9b4a... admin valid", "\x1b[31mred", "名" * 65])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_key_or_person_name_that_would_forge_lines_or_overflow_its_column_is_refused(
    service: Service, name: str
) -> None:
    """Names are printed by `keys list` and in flow logs: a newline or a terminal escape would forge
    lines there; PostgreSQL refuses a row wider than the column (64)."""
    admin = service.auth("admin")
    keys_before = rows(service, ApiKey)
    made = service.client.post("/v1/keys", json={"name": name, "scopes": ["detect"]}, headers=admin)
    assert made.status_code == 422 and made.json()["detail"].startswith("name: "), made.json()
    assert rows(service, ApiKey) == keys_before
    person = {"username": "night", "password": "a long enough one", "role": "operator", "display_name": name}
    refused = service.client.post("/v1/users", json=person, headers=admin)
    assert refused.status_code == 422 and refused.json()["detail"].startswith("display_name: ")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/", "/docs"])
def test_no_html_page_can_be_framed_or_sniffed(service: Service, path: str) -> None:
    """Every HTML page (the console, the API's docs) refuses to be framed by another site, where a
    hidden frame could make a signed-in person click (before: /docs and /redoc, now off, could be)."""
    page = service.client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


@contextmanager
def files_limited_to(limit: int) -> Iterator[None]:
    """No file of this process grows past `limit` bytes meanwhile (`ulimit -f`): a write past it
    fails with EFBIG, as on a full disk or quota, wherever the file is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal's kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize("service_overrides", [{"max_upload_mb": 4}])
def test_a_disk_that_cannot_take_the_photo_is_a_507_that_stores_nothing(
    service: Service, tmp_path: Path
) -> None:
    """A file-size limit (`ulimit -f`, as a full disk or a quota) under the evidence store: the upload
    is a 507 problem document saying so (an anonymous 500 before), no row and no half-written file is
    left, the case keeps its evidence, and the same upload is taken once there is room again."""
    case_id = report(service)
    noisy = np.random.default_rng(7).integers(0, 255, (600, 800, 3), dtype=np.uint8)
    photo = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    largest = max((path.stat().st_size for path in tmp_path.rglob("*") if path.is_file()), default=0)
    limit = largest + 64 * 1024  # the database and its WAL may still grow below it
    assert limit < len(photo) < 1024 * 1024, (largest, len(photo))  # below: the body is not spooled
    before = rows(service, Evidence)
    with files_limited_to(limit):
        refused = add_photo_answer(service, case_id, photo)
    assert refused.status_code == 507, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert (
        refused.json()["title"] == "insufficient storage"
        and "nothing was changed" in refused.json()["detail"]
    )
    assert rows(service, Evidence) == before
    assert not list(service.settings.evidence_dir.rglob("*.part"))
    assert add_photo_answer(service, case_id, photo).status_code == 201  # room again: taken
    assert rows(service, Evidence) == before + 1


@pytest.mark.parametrize("service_overrides", [{"max_upload_mb": 4}])
def test_a_temporary_folder_that_cannot_take_the_upload_is_a_507_not_a_bad_body(
    service: Service, tmp_path: Path
) -> None:
    """A photo over 1 MiB is spooled to the temporary folder while its form is read: that folder
    full (a file-size limit, as a full disk or quota) was FastAPI's 400 "There was an error parsing
    the body", blaming the client's body. It is a 507 problem document like the full evidence
    store's, nothing is stored, and the same upload is taken once there is room."""
    case_id = report(service)
    noisy = np.random.default_rng(8).integers(0, 255, (1000, 1200, 3), dtype=np.uint8)
    photo = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    largest = max((path.stat().st_size for path in tmp_path.rglob("*") if path.is_file()), default=0)
    limit = largest + 64 * 1024  # the database and its WAL may still grow below it
    assert limit < 1024 * 1024 < len(photo) < 4 * 1024 * 1024, (largest, len(photo))  # spooled
    before = rows(service, Evidence)
    with files_limited_to(limit):
        refused = add_photo_answer(service, case_id, photo)
    assert refused.status_code == 507, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] == "insufficient storage" and "nothing was changed" in refused.text
    assert rows(service, Evidence) == before
    assert not service.settings.evidence_dir.joinpath("uploads").exists()
    assert add_photo_answer(service, case_id, photo).status_code == 201  # room again: taken
    assert rows(service, Evidence) == before + 1


def test_a_database_whose_disk_is_full_is_told_from_a_busy_one(tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL (its file held at the pages it has, `PRAGMA max_page_count`, as a
    full disk does) is a full disk to the service, answered 507 and its audit row logged instead
    (checked by hand on a full tmpfs: Open311 and POST /v1/keys answered 507; before, an anonymous
    500, the audit row's own failed write made even a 507 one)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'full.db'}")

    def held(connection: Any, _record: Any) -> None:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {max(pages, 2)}")

    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x TEXT)"))
    event.listen(engine, "connect", held)
    engine.dispose()
    with pytest.raises(OperationalError) as caught, engine.begin() as connection:
        for _ in range(100):
            connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": "x" * 5000})
    assert is_storage_full(caught.value) and not is_busy(caught.value)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_postgresql_database_that_cannot_be_written_is_a_503_and_reads_go_on(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL refuses a write in a read-only transaction (a hot standby after a failover,
    `default_transaction_read_only`) with SQLSTATE 25006, which psycopg raises as an InternalError,
    not an OperationalError: it was an anonymous 500 with a traceback, and the audit row's own
    refusal a second one. Now a 503 like SQLite's read-only file, reads going on."""
    case_id = report(service)
    engine = service.client.app.state.service.sessions.kw["bind"]  # type: ignore[attr-defined]

    def read_only(on: bool) -> None:
        postgresql_read_only(service.settings.db_url, on)
        engine.dispose()  # the next connections take the setting

    read_only(True)
    try:
        read = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read"))
        assert read.status_code == 200, read.text
        sent = {"service_code": "06010", **PLACE, "description": "路边一堆垃圾"}
        refused = service.client.post("/open311/v2/requests.json", data=sent, headers=service.auth("report"))
        assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
        assert "cannot be written" in refused.json()[0]["description"]
        assert "audit row not written, the database cannot be written" in caplog.text
    finally:
        read_only(False)
    taken = service.client.post("/open311/v2/requests.json", data=sent, headers=service.auth("report"))
    assert taken.status_code == 201, taken.text


# A folder every user may reach (pytest's own are its owner's alone): the tests below drop to
# `nobody` while the database is read-only, and nobody must still find it to read it.
READ_ONLY_HOME = Path(tempfile.gettempdir()) / f"streetorder-read-only-{secrets.token_hex(4)}"


@pytest.mark.parametrize("db_url", [f"sqlite:///{READ_ONLY_HOME / 'db' / 'cases.db'}"], ids=["sqlite"])
@pytest.mark.parametrize(
    "service_overrides",
    [{"evidence_dir": READ_ONLY_HOME / "evidence", "annotations_dir": READ_ONLY_HOME / "annotations"}],
    ids=["reachable"],
)
def test_a_database_that_cannot_be_written_is_a_503_reads_go_on_and_the_write_is_taken_later(
    service: Service,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SQLite file and its folder read-only (chmod, a read-only mount), the service started on
    it: a report or a photo is a 503 problem document with Retry-After saying that the database
    cannot be written (an anonymous 500 before), naming no file or URL, nothing stored; reads go
    on; once the file is writable again the same report is taken by the same service (its
    connections were kept read-only before); `streetorder scan` stops with one line (a traceback
    before)."""
    from fastapi.testclient import TestClient

    from serve.api.app import create_app
    from serve.cases.settings import get_settings
    from serve.cli.main import main

    monkeypatch.setenv("STREETORDER_CACHE_DIR", str(READ_ONLY_HOME / "cache"))  # the scan's, not ~root's
    get_settings.cache_clear()
    try:
        case_id = report(service)
        folder, photos = READ_ONLY_HOME / "db", READ_ONLY_HOME / "photos"
        for writable in (
            READ_ONLY_HOME / "evidence",
            READ_ONLY_HOME / "cache",
            photos,
        ):  # all but the database
            writable.mkdir(exist_ok=True)
            writable.chmod(0o777)
        (photos / "p.jpg").write_bytes(jpeg(320, 240))
        stored = sorted(READ_ONLY_HOME.joinpath("evidence").rglob("*"))
        # this process's connections closed: SQLite would lend a new one their writable file
        service.client.app.state.service.sessions.kw["bind"].dispose()  # type: ignore[attr-defined]
        with held_open(folder / "cases.db"), ExitStack() as later:
            with read_only(folder):
                client = later.enter_context(TestClient(create_app(service.settings, clock=service.clock)))
                read = client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read"))
                assert read.status_code == 200, read.text
                sent = {"service_code": "06010", **PLACE, "description": "路边一堆垃圾"}
                refused = client.post("/open311/v2/requests.json", data=sent, headers=service.auth("report"))
                assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
                assert "cannot be written" in refused.json()[0]["description"]
                photo = client.post(
                    f"/v1/cases/{case_id}/evidence",
                    files={"file": ("photo.jpg", jpeg(320, 240, seed=3), "image/jpeg")},
                    data={"role": "near"},
                    headers=service.auth("cases:write"),
                )
                assert (
                    photo.status_code == 503 and photo.headers["content-type"] == "application/problem+json"
                )
                assert photo.json()["title"] == "database cannot be written", photo.text
                assert "nothing was changed" in photo.json()["detail"]
                assert "cases.db" not in photo.text and str(READ_ONLY_HOME) not in photo.text
                assert sorted(READ_ONLY_HOME.joinpath("evidence").rglob("*")) == stored
                assert "audit row not written, the database cannot be written" in caplog.text
                # the operator's log names the file and what to do, which the answer does not
                assert f"{folder / 'cases.db'}: the database cannot be written: cases.db, " in caplog.text
                again = client.post("/open311/v2/requests.json", data=sent, headers=service.auth("report"))
                assert again.status_code == 503  # still read-only: refused again
            # writable again: the same service takes the same report (its connections opened anew)
            taken = client.post("/open311/v2/requests.json", data=sent, headers=service.auth("report"))
            assert taken.status_code == 201, taken.text
            with read_only(folder):
                scan = ["scan", str(photos), "--db", service.settings.db_url, "--no-progress"]
                assert main([*scan, "--out", str(photos / "out")]) == 1
            said = capsys.readouterr().err.strip()
            assert said.startswith("streetorder scan: ") and "cannot be written" in said, said
            assert "Traceback" not in said and len(said.splitlines()) == 1, said
    finally:
        get_settings.cache_clear()
        shutil.rmtree(READ_ONLY_HOME, ignore_errors=True)


def test_a_service_started_on_a_read_only_database_file_says_so_once_at_start_and_serves_reads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A SQLite file this user may read but not write, in a folder it may write: `streetorder serve`
    started without a word, served reads, and answered every write 503; the operator learnt why only
    from the first write. The start is one log line naming the file and what to do, and reads go on."""
    from datetime import UTC, datetime

    from serve.api.app import create_app
    from serve.cases.auth import create_key, server_secret
    from serve.cases.db import open_database, transaction
    from serve.cases.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="streetorder-serve-ro-"))  # nobody must reach it: not tmp_path
    try:
        home.chmod(0o777)
        database = home / "db" / "cases.db"
        database.parent.mkdir()
        settings = Settings.model_validate(
            {
                "db_url": f"sqlite:///{database}",
                "secret": "tests-only-secret-0123456789",
                "model": "no-such-model",
                "evidence_dir": home / "evidence",
                "annotations_dir": home / "annotations",
            }
        )
        for folder in (settings.evidence_dir, settings.annotations_dir):
            folder.mkdir(mode=0o777)
            folder.chmod(0o777)
        sessions = open_database(settings.db_url)
        with transaction(sessions) as session:
            key, _ = create_key(
                session,
                name="ops",
                scopes=["cases:read", "report"],
                pepper=server_secret(settings),
                now=datetime.now(UTC),
            )
        sessions.kw["bind"].dispose()  # no connection left: its -wal and -shm gone with it
        headers = {"X-API-Key": key}
        with (
            read_only(database.parent, folder_writable=True),
            caplog.at_level(logging.INFO, "streetorder"),
            serving(create_app(settings)) as base,
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            (said,) = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
            assert said.startswith(f"{database}: the database cannot be written: cases.db"), said
            assert "may not be written by this user; make cases.db, cases.db-wal, cases.db-shm and " in said
            assert said.endswith(
                f"their folder {database.parent} writable for this user (or use a copy in a writable "
                "folder), and writes are taken again, no restart needed; reads are served meanwhile"
            ), said
            read = client.get("/v1/cases", headers=headers)
            assert read.status_code == 200, read.text
            sent = {"service_code": "06010", **PLACE, "description": "路边一堆垃圾"}
            refused = client.post("/open311/v2/requests.json", data=sent, headers=headers)
            assert refused.status_code == 503, refused.text
    finally:
        shutil.rmtree(home, ignore_errors=True)
