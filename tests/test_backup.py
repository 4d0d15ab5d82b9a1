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
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from serve.cases.auth import create_key
from serve.cases.db import known_revisions, make_engine, open_database, transaction
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
        keyed = f"sqlite:///{tmp_path / 'keyed.db'}"  # a new install: no case yet, but its keys
        with transaction(open_database(keyed)) as session:
            create_key(session, name="bureau", scopes=["admin"], pepper=b"p" * 16, now=T0)
        code, _, err = streetorder_db("restore", str(backup), "--db", keyed)
        assert code == 1 and "holds 1 API key(s)" in err and "--force" in err, err
        with open_database(keyed)() as session:
            assert session.scalars(select(ApiKey.name)).all() == ["bureau"]  # kept


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


def test_a_backup_of_no_streetorder_database_or_of_a_newer_schema_is_refused_and_the_data_kept(
    db_url: str, tmp_path: Path
) -> None:
    """Restore replaced the target first and migrated after: a backup a newer release made left the
    target on a schema this release cannot open (Alembic's traceback), and any SQLite file (here
    one of another program) replaced the cases with --force. Both are refused before anything is
    replaced; the cases and the schema stay."""
    factory = open_database(db_url)
    add_case(factory, 1)
    before = snapshot(factory)
    factory.kw["bind"].dispose()
    source = tmp_path / "source.db"
    source_url = f"sqlite:///{source}" if db_url.startswith("sqlite") else db_url
    newer = tmp_path / "newer.backup"
    if db_url.startswith("sqlite"):
        open_database(source_url).kw["bind"].dispose()
    engine = make_engine(source_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_next_release'"))
    engine.dispose()
    assert streetorder_db("backup", str(newer), "--db", source_url)[0] == 0
    if not db_url.startswith("sqlite"):  # the same database is the target: back to this release's
        engine = make_engine(db_url)
        with engine.begin() as connection:
            connection.execute(text(f"UPDATE alembic_version SET version_num = '{max(known_revisions())}'"))
        engine.dispose()
    code, _, err = streetorder_db("restore", str(newer), "--db", db_url, "--force")
    assert code == 1 and str(newer) in err and "9999_next_release" in err and "newer" in err, err
    assert snapshot(open_database(db_url)) == before
    if db_url.startswith("sqlite"):
        other = tmp_path / "other-program.db"
        with contextlib.closing(sqlite3.connect(other)) as foreign:
            foreign.execute("CREATE TABLE notes (text)")
            foreign.commit()
        code, _, err = streetorder_db("restore", str(other), "--db", db_url, "--force")
        assert code == 1 and f"{other}: holds no streetorder database" in err, err
        assert snapshot(open_database(db_url)) == before


def test_a_failed_backup_names_the_file_and_leaves_no_part_file(tmp_path: Path) -> None:
    """A photo given as the database was "file is not a database" (which file?) and left an empty
    FILE.part; a folder as the backup file wrote FOLDER.part beside it and failed on the rename."""
    photo = tmp_path / "cases.db"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not a database" * 10)
    code, _, err = streetorder_db("backup", str(tmp_path / "b.backup"), "--db", f"sqlite:///{photo}")
    assert code == 1 and f"{photo}: cannot back it up: file is not a database" in err, err
    live = tmp_path / "live.db"
    open_database(f"sqlite:///{live}").kw["bind"].dispose()
    folder = tmp_path / "backups"
    folder.mkdir()
    code, _, err = streetorder_db("backup", str(folder), "--db", f"sqlite:///{live}")
    assert code == 1 and f"{folder}: is a folder; name the backup file" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backups", "cases.db", "live.db"]


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
