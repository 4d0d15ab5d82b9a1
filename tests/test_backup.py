"""`streetorder db backup|restore`: a round trip on SQLite and PostgreSQL gives back exactly the
cases, evidence, flow logs and keys of the moment of the backup; bad restores are refused clearly."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from serve.cases.auth import create_key
from serve.cases.db import open_database, transaction
from serve.cases.findings import Finding, load_case_rules, record_finding
from serve.cases.orm import ApiKey, Case, Evidence, FlowEntry
from serve.cases.settings import Settings
from serve.cli.db import cli

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


def add_case(factory: sessionmaker[Session], i: int) -> None:
    """A finding 200 m further east each time: a new case per call."""
    with transaction(factory) as session:
        record_finding(
            session,
            Finding(
                event="exposed_garbage",
                lat=34.7235,
                lon=113.6265 + 0.002 * i,
                seen_at=T0 + timedelta(minutes=i),
                photo_path=f"p{i}.jpg",
                photo_sha256=f"{i:064x}",
            ),
            RULES,
        )


RULES = load_case_rules(Settings())


def snapshot(factory: sessionmaker[Session]) -> list[Any]:
    with factory() as session:
        return [
            [
                (c.number, c.state, c.lat, c.lon, c.version, c.deadline_at)
                for c in session.scalars(select(Case).order_by(Case.id))
            ],
            [(e.case_id, e.sha256, e.path) for e in session.scalars(select(Evidence).order_by(Evidence.id))],
            [(f.case_id, f.action, f.at) for f in session.scalars(select(FlowEntry).order_by(FlowEntry.id))],
            [(k.key_id, k.hash) for k in session.scalars(select(ApiKey).order_by(ApiKey.id))],
        ]


def streetorder_db(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_backup_and_restore_round_trip(db_url: str, tmp_path: Path) -> None:
    """On SQLite (online backup API) and PostgreSQL (pg_dump / pg_restore)."""
    factory = open_database(db_url)
    for i in range(3):
        add_case(factory, i)
    with transaction(factory) as session:
        create_key(session, name="hotline", scopes=["report"], pepper=b"p" * 16, now=T0)
    before = snapshot(factory)
    backup = tmp_path / "backups" / "cases.backup"
    code, out, err = streetorder_db("backup", str(backup), "--db", db_url)
    assert code == 0, err
    assert backup.stat().st_size > 0 and "written to" in out
    assert not list(backup.parent.glob("*.part"))

    add_case(factory, 7)  # the day goes on after the backup ...
    with transaction(factory) as session:  # ... and something is lost
        session.execute(delete(FlowEntry))
        session.execute(delete(Evidence))
    factory.kw["bind"].dispose()

    code, _, err = streetorder_db("restore", str(backup), "--db", db_url)
    assert code == 1 and "holds 4 case(s)" in err and "--force" in err
    code, out, err = streetorder_db("restore", str(backup), "--db", db_url, "--force")
    assert code == 0, err
    assert "3 case(s)" in out
    restored = open_database(db_url)
    assert snapshot(restored) == before
    add_case(restored, 9)  # the restored database takes new cases, numbered after the restored ones
    with restored() as session:
        assert session.scalars(select(Case.number).order_by(Case.id.desc())).first() == "SO202611200004"
    restored.kw["bind"].dispose()

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}" if db_url.startswith("sqlite") else None
    if fresh:  # into an empty database: no --force needed
        assert streetorder_db("restore", str(backup), "--db", fresh)[0] == 0
        assert snapshot(open_database(fresh)) == before


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "not a SQLite backup"),
        (b"PGDMP\x01\x0e\x00" + b"\x00" * 64, "it is a pg_dump backup"),
        (b"SQLite format 3\x00" + b"\x00" * 200, "integrity"),
    ],
)
def test_bad_backups_are_refused_naming_the_file(tmp_path: Path, content: bytes, words: str) -> None:
    source = tmp_path / "old.backup"
    source.write_bytes(content)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    code, _, err = streetorder_db("restore", str(source), "--db", target)
    assert code == 1 and str(source) in err and words in err, err


def test_sqlite_backup_is_consistent_while_the_service_writes(tmp_path: Path) -> None:
    """A writer commits cases in a loop during the backup: the copy holds whole cases only."""
    url = f"sqlite:///{tmp_path / 'live.db'}"
    factory = open_database(url)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            add_case(factory, 100 + i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for n in range(3):
            assert streetorder_db("backup", str(tmp_path / f"b{n}.db"), "--db", url)[0] == 0
    finally:
        stop.set()
        thread.join()
    for n in range(3):
        with sqlite3.connect(tmp_path / f"b{n}.db") as copy:
            cases = copy.execute("select count(*) from cases").fetchone()[0]
            flows = copy.execute("select count(*) from flow_log").fetchone()[0]
            evidence = copy.execute("select count(*) from evidence").fetchone()[0]
            assert cases == flows == evidence  # each case was committed with its evidence and flow entry
