"""Migrations and the case tables on both databases the service supports (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from serve.cases.db import MIGRATIONS, make_engine, open_database, transaction
from serve.cases.enums import AiReview, CaseSource, EvidenceRole, PhotoStatus, RecordType, State
from serve.cases.orm import Case, FlowEntry, Photo, UTCDateTime


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
    wanted.add("camera_states")
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


# --- migration 0003: closed value sets on a database made at 0002 with legacy values -------------

AT = datetime(2025, 9, 30, 1, 30, tzinfo=UTC)
PHOTOS = sa.table(
    "photos",
    *(sa.column(name) for name in ("id", "sha256", "path", "source", "status", "lat", "lon")),
    *(sa.column(name, UTCDateTime()) for name in ("taken_at", "processed_at")),
)
CASES = sa.table(
    "cases",
    *(sa.column(name) for name in ("id", "number", "source", "record_type", "event", "major", "cjt214")),
    *(sa.column(name) for name in ("gbt47678", "description", "lat", "lon", "state", "ai_review", "version")),
    *(sa.column(name, UTCDateTime()) for name in ("filed_at", "first_seen_at", "last_seen_at")),
)
EVIDENCE = sa.table(
    "evidence",
    *(sa.column(name) for name in ("id", "case_id", "photo_id", "role", "path", "sha256")),
    sa.column("boxes", sa.JSON()),
    sa.column("captured_at", UTCDateTime()),
)
FLOW = sa.table(
    "flow_log",
    *(
        sa.column(name)
        for name in ("id", "case_id", "action", "from_state", "to_state", "operator", "overdue")
    ),
    sa.column("at", UTCDateTime()),
)


def legacy_database(url: str, case_state: str = " Reported") -> Config:
    """A database at revision 0002 holding what older releases and hand edits left behind."""
    config = alembic_config(url)
    command.upgrade(config, "0002")
    engine = make_engine(url)
    photo = {"path": "p.jpg", "lat": None, "lon": None, "processed_at": AT}
    upload = {**photo, "source": "upload", "status": "unlocated"}
    with engine.begin() as connection:
        connection.execute(
            sa.insert(PHOTOS),
            [
                {**photo, "id": 1, "sha256": "a" * 64, "source": "Patrol", "status": "DONE", "taken_at": AT},
                # uploads without a position: without a time the old rule stored the upload time
                {**upload, "id": 2, "sha256": "b" * 64, "taken_at": AT},
                {**upload, "id": 3, "sha256": "c" * 64, "taken_at": AT - timedelta(days=1)},
            ],
        )
        connection.execute(
            sa.insert(CASES),
            {
                "id": 1,
                "number": "SO202509300001",
                "source": "patrol_photo ",
                "record_type": "Event",
                "event": "exposed_garbage",
                "major": "01",
                "cjt214": "0102",
                "gbt47678": "06010",
                "description": "",
                "lat": 34.7235,
                "lon": 113.6265,
                "state": case_state,
                "ai_review": "Pending",
                "version": 1,
                **{name: AT for name in ("filed_at", "first_seen_at", "last_seen_at")},
            },
        )
        connection.execute(
            sa.insert(EVIDENCE),
            {"id": 1, "case_id": 1, "photo_id": 1, "role": "Finding", "path": "p.jpg", "sha256": "a" * 64}
            | {"boxes": [{"xyxy": [1, 2, 3, 4], "confidence": 0.5, "class": "garbage"}], "captured_at": AT},
        )
        connection.execute(
            sa.insert(FLOW),
            {"id": 1, "case_id": 1, "action": "REPORT", "from_state": None, "to_state": "reported"}
            | {"operator": "scan", "overdue": False, "at": AT},
        )
    engine.dispose()
    return config


def test_0003_maps_legacy_values_and_then_refuses_others(db_url: str) -> None:
    command.upgrade(legacy_database(db_url), "head")
    factory = open_database(db_url)
    with factory() as session:
        photos = {p.id: p for p in session.scalars(sa.select(Photo))}
        assert (photos[1].source, photos[1].status, photos[1].taken_at) == ("patrol", "done", AT)
        assert photos[2].taken_at is None and photos[2].status == PhotoStatus.UNLOCATED  # no time made up
        assert photos[3].taken_at == AT - timedelta(days=1)  # a capture time of its own is kept
        case = session.scalars(sa.select(Case)).one()
        assert (case.source, case.record_type, case.state, case.ai_review) == (
            CaseSource.PATROL_PHOTO,
            RecordType.EVENT,
            State.REPORTED,
            AiReview.PENDING,
        )
        assert case.evidence[0].role == EvidenceRole.FINDING and case.flow[0].action == "report"
        assert case.evidence[0].photo_id == 1  # references kept through the copied tables
    for table, change in (
        (PHOTOS, {"status": "processed"}),
        (PHOTOS, {"source": "camera"}),
        (CASES, {"state": "open"}),
        (CASES, {"ai_review": "maybe"}),
        (CASES, {"source": "twitter"}),
        (EVIDENCE, {"role": "selfie"}),
        (FLOW, {"action": "teleport"}),
        (FLOW, {"to_state": "gone"}),
    ):
        with pytest.raises(IntegrityError), transaction(factory) as session:
            session.execute(sa.update(table).values(change))
    with transaction(factory) as session:
        session.execute(sa.update(CASES).values(ai_review=None))  # people's findings have no review
    factory.kw["bind"].dispose()


def test_0003_stops_on_a_value_it_cannot_map_and_changes_nothing(db_url: str) -> None:
    config = legacy_database(db_url, case_state="waiting")
    with pytest.raises(RuntimeError, match=r"cases\.state = 'waiting' \(1 row\(s\)\)"):
        command.upgrade(config, "head")
    engine = make_engine(db_url)
    with engine.connect() as connection:
        assert connection.execute(sa.select(CASES.c.source, CASES.c.state)).one() == (
            "patrol_photo ",
            "waiting",
        )
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0002"
        connection.execute(sa.update(CASES).values(state="handling"))
        connection.commit()
    engine.dispose()
    command.upgrade(config, "head")  # fixed by a person: the upgrade goes through


def test_evidence_steps_are_kept_across_a_refused_downgrade(db_url: str) -> None:
    """Migration 0013: flow_log.action takes detach/split/merge; a database holding such a step does not
    go below 0013 (its flow log says where evidence went), and refuses any other action still."""
    config = alembic_config(db_url)
    factory = open_database(db_url)  # migrated to head
    at = datetime(2025, 9, 30, 3, 0, tzinfo=UTC)
    with transaction(factory) as session:
        case = _case("SO20250930000001", at)
        case.flow.append(
            FlowEntry(action="detach", from_state="reported", to_state="reported", operator="op", at=at)
        )
        session.add(case)
    with pytest.raises(IntegrityError), transaction(factory) as session:
        session.add(
            FlowEntry(
                case_id=1, action="shred", from_state="reported", to_state="reported", operator="op", at=at
            )
        )
    factory.kw["bind"].dispose()
    command.downgrade(config, "0013")  # later revisions first: PostgreSQL undoes a failed downgrade whole
    with pytest.raises(RuntimeError, match="cannot go below revision 0013"):
        command.downgrade(config, "0012")
    engine = make_engine(db_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT action FROM flow_log")).scalars().all() == ["detach"]
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0013"
    engine.dispose()


def test_a_database_a_newer_release_migrated_is_refused_and_left_as_it_was(db_url: str) -> None:
    """A revision this release has no script for was Alembic's traceback from every mode; now one
    line naming the database and what to do, and its data and revision stay as they were."""
    from serve.cases.db import DatabaseUnavailable

    open_database(db_url).kw["bind"].dispose()
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(DatabaseUnavailable, match=r"9999_from_the_future.*a newer release migrated it"):
        open_database(db_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == (
            "9999_from_the_future"
        )
    engine.dispose()


def test_migration_0020_gives_keys_a_rate_of_their_own_and_takes_it_back(db_url: str) -> None:
    """Keys made before 0020 keep their scopes' rate (NULL); down again, the keys stay, their own
    rates go."""
    config = alembic_config(db_url)
    command.upgrade(config, "0019")
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO api_keys (key_id, name, scopes, salt, hash, created_at) "
                "VALUES ('0123456789ab', 'bridge', '[\"report\"]', 's', 'h', '2026-12-07 05:00:00')"
            )
        )

    def columns() -> set[str]:
        return {str(c["name"]) for c in inspect(engine).get_columns("api_keys")}

    assert "rate_per_min" not in columns()
    command.upgrade(config, "head")
    with engine.begin() as connection:
        assert connection.execute(sa.text("SELECT rate_per_min FROM api_keys")).scalar_one() is None
        connection.execute(sa.text("UPDATE api_keys SET rate_per_min = 7200"))
    command.downgrade(config, "0019")
    assert "rate_per_min" not in columns()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT name FROM api_keys")).scalar_one() == "bridge"
    engine.dispose()
    command.upgrade(config, "head")
