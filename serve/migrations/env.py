"""Alembic environment: runs migrations on the URL set by serve.cases.db.migrate (or alembic -x url=...)."""

from __future__ import annotations

from alembic import context
from alembic.runtime.migration import MigrationContext
from sqlalchemy import pool

from serve.cases.db import make_engine
from serve.cases.orm import Base

config = context.config
url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
if not url:
    raise SystemExit("no database URL: use streetorder's --db or alembic -x url=...")

engine = make_engine(url, poolclass=pool.NullPool)  # migrations keep no pooled connection
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch migrations recreate a table by copy, drop and rename; dropping a table that others
        # reference fails while SQLite enforces foreign keys (the pragma only changes outside a
        # transaction, hence the commit). Every revision keeps the references themselves intact.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
        # One migrator at a time, all revisions in one transaction: SQLite's DDL is otherwise
        # committed statement by statement, and two scans started at once on a new database
        # interleaved their revisions ("table ... already exists", "a newer release migrated it").
        # The second waits for the write lock (busy_timeout), then finds the schema at head. A
        # database at head already is only read, as before (a read-only copy still opens).
        if MigrationContext.configure(connection).get_current_revision() != context.get_head_revision():
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,  # SQLite alters tables by copying
    )
    with context.begin_transaction():  # SQLite: inside the transaction begun above
        context.run_migrations()
    if sqlite:
        connection.commit()
