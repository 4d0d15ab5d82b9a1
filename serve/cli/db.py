"""`streetorder db backup|restore`: copies of the case database that can be taken while it serves.

    streetorder db backup FILE [--db URL]
    streetorder db restore FILE [--db URL] [--force]

SQLite: SQLite's online backup API (a consistent snapshot while the service keeps writing; WAL
content included), written to FILE.part and renamed, then checked with `PRAGMA integrity_check`.
PostgreSQL: `pg_dump --format=custom` (a consistent snapshot in one transaction), restored with
`pg_restore --clean --if-exists --single-transaction` (all or nothing).

Restore replaces every table of the target with the backup's, refuses a target that holds cases,
photos, accounts or API keys unless --force, and migrates the result to the newest schema (a
backup of an older release). A backup that fails SQLite's integrity check, holds no streetorder
database or one of a newer release's schema is refused before anything is replaced.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, inspect, select
from sqlalchemy import table as table_clause
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from serve.cases.db import known_revisions, make_engine, migrate
from serve.cases.settings import get_settings

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message names the file or database."""


def backend(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"{url}: backups support SQLite and PostgreSQL, not {name}")
    return name


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url}: an in-memory database has nothing to back up")
    return Path(database)


def libpq_url(url: str) -> str:
    """The URL as pg_dump and pg_restore read it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore on PATH, else Debian's newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3], reverse=True
    )
    if not versions:
        raise BackupError(
            f"{name} not found: install PostgreSQL's client tools (apt-get install postgresql-client)"
        )
    return str(versions[0])


def run_tool(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip() or done.stdout.strip()}")


def backup(url: str, target: Path) -> Path:
    """Write a consistent copy of the database at `url` to `target` (atomically: .part, then rename)."""
    kind = backend(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        raise BackupError(f"{target}: is a folder; name the backup file, e.g. {target / 'cases.backup'}")
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    try:
        if kind == "sqlite":
            source = sqlite_path(url)
            if not source.is_file():
                raise BackupError(f"{source}: no such database file")
            with sqlite3.connect(source) as live, sqlite3.connect(partial) as copy:
                try:
                    live.backup(copy)  # page by page; sees one consistent state even while others write
                except sqlite3.DatabaseError as err:  # "file is not a database": say which file
                    raise BackupError(f"{source}: cannot back it up: {err}") from err
                check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(
                    f"{source}: its copy fails SQLite's integrity check ({check}); nothing written"
                )
        else:
            run_tool(
                [pg_tool("pg_dump"), "--format=custom", f"--file={partial}", "--dbname", libpq_url(url)],
                "pg_dump",
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)  # a failed backup leaves no half-written file behind
    return target


KEPT_RECORDS = {"cases": "case(s)", "photos": "photo(s)", "users": "account(s)", "api_keys": "API key(s)"}


def records_held(url: str) -> dict[str, int]:
    """How many rows of each kind of record `url` holds (tables it lacks hold none): what a restore
    would replace. Cases alone missed a new install's accounts and keys, replaced unasked."""
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            return {
                table: int(
                    connection.execute(select(func.count()).select_from(table_clause(table))).scalar_one()
                )
                for table in KEPT_RECORDS
                if table in tables
            }
    finally:
        engine.dispose()


def schema_of_backup(kind: str, source: Path) -> str:
    """The schema revision a backup holds, checked before anything is replaced: a SQLite file that
    fails its integrity check, holds no streetorder database (any other SQLite file) or one a newer
    release migrated (which this one could neither use nor migrate) is refused, the target kept."""
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(source)) as backup_db:
            try:
                check = backup_db.execute("PRAGMA integrity_check").fetchone()[0]
            except sqlite3.DatabaseError as err:
                check = str(err)
            if check != "ok":
                raise BackupError(f"{source}: fails SQLite's integrity check: {check}")
            try:
                rows = backup_db.execute("SELECT version_num FROM alembic_version").fetchall()
            except sqlite3.DatabaseError:
                rows = []
    else:  # the one table's data, as pg_restore would load it (a COPY block)
        command = [pg_tool("pg_restore"), "--data-only", "--table=alembic_version", "--file=-", str(source)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BackupError(f"pg_restore failed: {done.stderr.strip() or done.stdout.strip()}")
        lines = done.stdout.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("COPY ")), len(lines))
        rows = [(line,) for line in itertools.takewhile(lambda line: line != "\\.", lines[start + 1 :])]
    if len(rows) != 1:
        raise BackupError(f"{source}: holds no streetorder database (no schema revision); nothing restored")
    revision = str(rows[0][0])
    if revision not in known_revisions():
        raise BackupError(
            f"{source}: a backup of schema {revision}, which a newer streetorder made; restore it with "
            "that release (nothing restored)"
        )
    return revision


def restore(url: str, source: Path, *, force: bool = False) -> int:
    """Replace the database at `url` with the backup in `source`; returns the cases it now holds."""
    kind = backend(url)
    try:
        head = source.open("rb").read(len(SQLITE_MAGIC))
    except OSError as err:
        raise BackupError(f"{source}: cannot read backup: {err.strerror or err}") from err
    expected = SQLITE_MAGIC if kind == "sqlite" else PG_DUMP_MAGIC
    if not head.startswith(expected):
        made_by = (
            "SQLite"
            if head.startswith(SQLITE_MAGIC)
            else "pg_dump"
            if head.startswith(PG_DUMP_MAGIC)
            else None
        )
        raise BackupError(
            f"{source}: not a {'SQLite' if kind == 'sqlite' else 'pg_dump custom-format'} backup"
            + (
                f" (it is a {made_by} backup: restore it into a {made_by.split('_')[0]} database)"
                if made_by
                else ""
            )
        )
    schema_of_backup(kind, source)
    present = {table: count for table, count in records_held(url).items() if count}
    if present and not force:
        held = ", ".join(f"{count} {KEPT_RECORDS[table]}" for table, count in present.items())
        raise BackupError(f"{url}: the database holds {held}; restore replaces them all (add --force)")
    if kind == "sqlite":
        with sqlite3.connect(source) as backup_db:
            target = sqlite_path(url)
            target.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(target) as live:
                backup_db.backup(live)  # replaces the target's pages under its write lock: all or nothing
    else:
        command = [pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction"]
        run_tool([*command, "--dbname", libpq_url(url), str(source)], "pg_restore")
    migrate(url)
    return records_held(url).get("cases", 0)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder db", description=__doc__.splitlines()[0])
    parser.add_argument(
        "action", choices=("backup", "restore"), help="backup: database to FILE; restore: FILE to database"
    )
    parser.add_argument("file", type=Path, help="the backup file")
    parser.add_argument("--db", help="database URL (default STREETORDER_DB_URL or sqlite:///streetorder.db)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="restore over a database that holds cases, photos, accounts or keys",
    )
    args = parser.parse_args(argv)
    url = args.db or get_settings().db_url
    try:
        if args.action == "backup":
            written = backup(url, args.file)
            size = written.stat().st_size
            print(f"backup of {make_url(url).render_as_string()} written to {written} ({size} bytes)")
        else:
            cases = restore(url, args.file, force=args.force)
            print(f"{make_url(url).render_as_string()} restored from {args.file}: {cases} case(s)")
    except (BackupError, SQLAlchemyError, sqlite3.Error) as err:
        print(f"streetorder db: {err}", file=sys.stderr)
        return 1
    return 0
