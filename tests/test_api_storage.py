"""Migrations and the case tables on both databases the service supports (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.orm.exc import StaleDataError

from serve.cases.db import MIGRATIONS, make_engine, open_database, transaction
from serve.cases.orm import Case


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def test_migrations_have_one_head() -> None:
    assert len(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()) == 1


def test_migrations_upgrade_downgrade_upgrade(db_url: str) -> None:
    config = alembic_config(db_url)
    command.upgrade(config, "head")
    engine = make_engine(db_url)
    wanted = {"cases", "evidence", "flow_log", "photos", "api_keys", "idempotency_records", "audit_log"}
    assert wanted <= set(inspect(engine).get_table_names())
    command.downgrade(config, "base")
    assert not wanted & set(inspect(engine).get_table_names())
    command.upgrade(config, "head")
    assert wanted <= set(inspect(engine).get_table_names())
    engine.dispose()


def _case(number: str, at: datetime) -> Case:
    return Case(
        number=number,
        source="public",
        record_type="event",
        event="exposed_garbage",
        major="01",
        cjt214="0102",
        gbt47678="06010",
        lat=34.7235,
        lon=113.6265,
        state="reported",
        filed_at=at,
        first_seen_at=at,
        last_seen_at=at,
    )


def test_version_column_refuses_a_stale_write(db_url: str) -> None:
    """Two sessions read version 1; the second write must fail instead of overwriting the first."""
    factory = open_database(db_url)
    at = datetime(2025, 9, 30, 3, 0, tzinfo=UTC)
    with transaction(factory) as session:
        session.add(_case("SO20250930000001", at))
    with factory() as first, factory() as second:
        a = first.get(Case, 1)
        b = second.get(Case, 1)
        assert a is not None and b is not None and a.version == b.version == 1
        a.state = "verified"
        first.commit()
        b.state = "not_filed"
        with pytest.raises(StaleDataError):
            second.commit()
    with factory() as session:
        stored = session.get(Case, 1)
        assert stored is not None and (stored.state, stored.version, stored.filed_at) == ("verified", 2, at)
    factory.kw["bind"].dispose()
