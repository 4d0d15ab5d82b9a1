"""Engine, sessions and migrations: SQLite (embedded default) or PostgreSQL, one code path."""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, Row, Select, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import ArgumentError, DatabaseError, DBAPIError, InterfaceError
from sqlalchemy.orm import Session, sessionmaker

from vision.core.files import is_utf8_path, shown_path

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the one writer; busy_timeout waits instead of failing at once."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class TextNotStorable(ValueError):
    """A text value holds NUL (U+0000), from any door (a query filter, a note, a form field)."""


def _texts(parameters: Any) -> Iterator[str]:
    """The text values of a statement's parameters: a row, a list of rows (executemany), or one
    flat row even when executemany is set (SQLAlchemy's batched INSERT ... RETURNING sends one)."""
    if isinstance(parameters, str):
        yield parameters
    elif isinstance(parameters, dict):
        for value in parameters.values():
            yield from _texts(value)
    elif isinstance(parameters, list | tuple):
        for value in parameters:
            yield from _texts(value)


def _refuse_nul(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _executemany: bool
) -> None:
    """PostgreSQL refuses NUL in text (a 500 once, for `?grid=%00` or a note holding one) and SQLite
    keeps it, to break exports later: refused on both, before the statement runs, as bad input."""
    if any("\x00" in text for text in _texts(parameters)):
        raise TextNotStorable("a text value holds a NUL character (U+0000), which no text here may hold")


# PostgreSQL: serialization failure, deadlock detected, lock not available
BUSY_SQLSTATES = {"40001", "40P01", "55P03"}


def is_busy(error: BaseException) -> bool:
    """A statement that gave up waiting for another writer: SQLite's write lock held past
    busy_timeout (a long transaction of another process), PostgreSQL's deadlock or lock failures.
    Its transaction is rolled back whole; the same request later can succeed."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    sqlite_error = str(getattr(orig, "sqlite_errorname", ""))
    return sqlite_error.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or (
        getattr(orig, "sqlstate", None) in BUSY_SQLSTATES
    )


# PostgreSQL: disk full, out of memory, too many connections... only the first is the disk's
FULL_SQLSTATES = {"53100"}


def is_storage_full(error: BaseException) -> bool:
    """A write the database could not make for want of disk: SQLite's SQLITE_FULL, PostgreSQL's
    disk_full. Its transaction is rolled back; the same request can succeed once there is room."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    return str(getattr(orig, "sqlite_errorname", "")) == "SQLITE_FULL" or (
        getattr(orig, "sqlstate", None) in FULL_SQLSTATES
    )


# PostgreSQL: read_only_sql_transaction (a hot standby, `default_transaction_read_only`)
READ_ONLY_SQLSTATES = {"25006"}


def is_read_only(error: BaseException) -> bool:
    """A write the database refused because it cannot write at all: SQLite's SQLITE_READONLY family
    (its file, or the folder its journal goes in, read-only by mode or mount), PostgreSQL's read-only
    transaction. Nothing was written; the same write can succeed once it is writable again."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    return str(getattr(orig, "sqlite_errorname", "")).startswith("SQLITE_READONLY") or (
        getattr(orig, "sqlstate", None) in READ_ONLY_SQLSTATES
    )


# what `unwritable` says follows for a running service: it takes writes again without a restart
# (`_reopen_when_read_only`), and reads go on meanwhile
WRITES_LATER = "and writes are taken again, no restart needed; reads are served meanwhile"


def unwritable(url: str, then: str = "then run again") -> str | None:
    """Why this process cannot write the SQLite database at `url`, naming the path and what to do
    (`then`: what follows once it is writable); None where it can (or cannot tell: PostgreSQL, a
    file not made yet in a writable folder).

    In WAL mode SQLite writes the file and keeps FILE-wal and FILE-shm beside it, made by the first
    connection and removed by the last: a database in a folder it may not write cannot even be read
    once no process holds it open, and a read-only file is found only at the first write (a scan had
    loaded its model and inspected a batch by then). The kernel's word for this process's effective
    user (`os.access`: modes and read-only mounts), before a byte is written.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database).absolute()
    effective = os.access in os.supports_effective_ids

    def writable(target: Path) -> bool:
        return os.access(target, os.W_OK, effective_ids=effective)

    sides = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    made = [side for side in (path, *sides) if side.exists()]
    read_only = [target.name for target in made if not writable(target)]
    missing = [side.name for side in (path, *sides) if side not in made]
    reasons = [f"{', '.join(read_only)} may not be written by this user"] if read_only else []
    if missing and path.parent.is_dir() and not writable(path.parent):
        reasons.append(f"its folder may not be written, where SQLite must make {', '.join(missing)}")
    if not reasons:
        return None
    why = "; ".join(reasons)
    return (
        f"{path}: the database cannot be written: {why}; make {path.name}, {sides[0].name}, "
        f"{sides[1].name} and their folder {path.parent} writable for this user (or use a copy in a "
        f"writable folder), {then}"
    )


def _reopen_when_read_only(context: ExceptionContext) -> None:
    """SQLite opens a file it may not write read-only and keeps it so, and while one connection of
    the process holds it so every new one is read-only too: a connection that met a read-only
    database is closed (its cursor first: an open statement keeps a closed connection's file) and
    the pool's idle ones with it, so that the first write after the file is writable again opens
    it writable instead of failing until a restart."""
    if not is_read_only(context.sqlalchemy_exception or context.original_exception):
        return
    context.is_disconnect = True
    cursor = getattr(context.execution_context, "cursor", None)  # (ExceptionContext.cursor: unset)
    if cursor is not None:
        cursor.close()
    if context.engine is not None:
        context.engine.pool.dispose()


T = TypeVar("T")
BUSY_TRIES = 6  # a write that finds the database busy this many times in a row gives up
BUSY_PAUSE_S = 0.1  # the pause after the first busy try; doubled after each next one, jittered


def database_said(error: DBAPIError) -> str:
    """The first line of the database's own message (`deadlock detected`, `canceling statement due
    to lock timeout`, `database is locked`, `connection refused`), for a log line or a message."""
    return next((line.strip() for line in str(error.orig or error).splitlines() if line.strip()), "")


def retry_busy(
    work: Callable[[], T],
    retried: Callable[[int, DBAPIError], None] | None = None,
    budget_s: float | None = None,
) -> T:
    """`work()`, run again after a short jittered pause while it fails `is_busy`, up to BUSY_TRIES times.

    For writers that must not stop on a transient conflict (a scan beside the service, a camera's
    findings): a deadlock or a lock wait given up rolled the transaction back whole, so running it
    again writes nothing twice. `work` opens its own transaction and undoes what it changed in
    memory before it starts; `retried(try, error)` is told of each retry. The error of the last try
    is raised, and any other error at once. Jitter: two writers that deadlocked each other do not
    meet again at the same moment. `budget_s`: no try starts later than this after the first (a
    request someone waits for: SQLite's busy_timeout already made each try wait 30 s).
    """
    started = time.monotonic()
    attempt = 1
    while True:
        try:
            return work()
        except DBAPIError as error:
            late = budget_s is not None and time.monotonic() - started >= budget_s
            if attempt >= BUSY_TRIES or late or not is_busy(error):
                raise
            if retried is not None:
                retried(attempt, error)
        time.sleep(BUSY_PAUSE_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
        attempt += 1


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "handle_error", _reopen_when_read_only)
    else:
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


def known_revisions() -> set[str]:
    """The schema revisions this release has migrations for (a database at another was made newer)."""
    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (Alembic upgrade head)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


class DatabaseUnavailable(RuntimeError):
    """The database a URL names cannot be opened: no URL at all, a server that does not answer, a
    SQLite file that is not there where one must be. The message names it (never its password)."""


def open_database(url: str, create: bool = True) -> sessionmaker[Session]:
    """Migrate and return a session factory; the one entry point of the CLI and the service.

    `create=False` for commands that only read one (stats, the labelling queue): a mistyped SQLite
    path is then an error instead of a new, empty database that has "nothing" in it.
    """
    if not is_utf8_path(url):  # a path from a GBK folder name: no driver takes it
        raise DatabaseUnavailable(f"{shown_path(url)}: not UTF-8 text; name the database by a UTF-8 path")
    example = "sqlite:///PATH or postgresql+psycopg://USER@HOST/NAME"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is no number (`[::1` unclosed)
        raise DatabaseUnavailable(f"{url!r} is not a database URL ({example})") from None
    shown = parsed.render_as_string(hide_password=True)
    try:  # the dialect and its driver, before any migration imports them deep inside Alembic
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, ImportError) as err:  # `postgres://`, `mysql://`: a traceback before
        raise DatabaseUnavailable(f"{shown}: no database driver here for it ({err}); use {example}") from None
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if parsed.get_backend_name() == "sqlite" and path in (None, "", ":memory:"):
        # migrations and sessions would each see an empty database of their own, kept by nothing
        raise DatabaseUnavailable(f"{url}: an in-memory database keeps nothing; name a file: sqlite:///PATH")
    if not create and path is not None and not Path(path).is_file():
        raise DatabaseUnavailable(f"{shown}: no database file {path}")
    try:
        migrate(url)
    except (DatabaseError, InterfaceError) as err:  # DatabaseError: also a file that is no database
        if (why := unwritable(url)) is not None:  # a WAL database in a read-only folder, no one holding it
            raise DatabaseUnavailable(f"{why} ({database_said(err)})") from err
        raise DatabaseUnavailable(f"{shown}: cannot open the database ({database_said(err)})") from err
    except CommandError as err:  # a schema revision this release does not know: a newer one's
        raise DatabaseUnavailable(
            f"{shown}: its schema is not one this streetorder knows ({err}): a newer release migrated "
            "it; run that release, or restore a backup this one made"
        ) from None
    return sessionmaker(make_engine(url), expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed whole or rolled back whole."""
    with factory() as session, session.begin():
        yield session


def with_children(
    session: Session,
    parents: Select[*tuple[Any, ...]],
    *children: Select[*tuple[Any, ...]],
    batch: int = 500,
) -> Iterator[tuple[Row[Any], tuple[list[Row[Any]], ...]]]:
    """Plain rows of `parents` (its id first), `batch` at a time, each with its rows of every select
    of `children` (the parent's id first), read per batch by `IN` the batch's ids, in each select's
    order: what `selectinload` does, without building an ORM object per row (a year of a city's
    cases and flow logs as objects took half a minute, most of it the objects). 500 ids a statement,
    as `selectinload` asks: SQLite before 3.32 takes at most 999 variables. The parents' query is
    sent at once, not at the first row: a value the database refuses (a NUL in a filter) is the
    caller's error before a streamed answer has begun."""
    connection = session.connection()
    result = connection.execute(parents.execution_options(yield_per=batch))

    def paired() -> Iterator[tuple[Row[Any], tuple[list[Row[Any]], ...]]]:
        for part in result.partitions():
            ids = [row[0] for row in part]
            found: list[defaultdict[Any, list[Row[Any]]]] = []
            for query in children:
                by_parent: defaultdict[Any, list[Row[Any]]] = defaultdict(list)
                for row in connection.execute(query.where(query.selected_columns[0].in_(ids))).all():
                    by_parent[row[0]].append(row)
                found.append(by_parent)
            for row in part:
                yield row, tuple(rows[row[0]] for rows in found)

    return paired()
