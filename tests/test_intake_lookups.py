"""The lookups intake makes for every photo, kept bounded as the database grows: near-identical
photos found through indexed hash bands (vision.core.phash, serve/cases/intake.py `copies_of`,
migration 0014: every stored hash within NEAR_IDENTICAL_BITS is found, none further is taken for a
copy, evidence filed before 0014 is found once migrated), the duplicate rule's open cases
looked up by place (migration 0015), and a scanned path's earlier unreadable rows by path
(migration 0016, which drops those a later read of their path had superseded)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from test_api_storage import _case, alembic_config

from serve.cases.db import open_database, transaction
from serve.cases.findings import Finding, find_duplicate, load_case_rules
from serve.cases.intake import copies_of, supersede_unreadable, waiting_copies
from serve.cases.orm import Evidence, Photo
from serve.cases.settings import Settings
from vision.core.phash import (
    BAND_BITS,
    NEAR_IDENTICAL_BITS,
    KnownImages,
    band_neighbours,
    hash_bands,
    hash_distance,
)


def flipped(phash: str, positions: list[int]) -> str:
    value = int(phash, 16)
    for bit in positions:
        value ^= 1 << bit
    return f"{value:016x}"


@pytest.mark.parametrize(
    ("phash", "bands"),
    [
        ("0000000000000000", (0, 0, 0)),
        ("ffffffffffffffff", (2**22 - 1, 2**21 - 1, 2**21 - 1)),
        ("0000000000000001", (0, 0, 1)),
        ("8000000000000000", (2**21, 0, 0)),
        ("0000040000000000", (1, 0, 0)),  # bit 42: the lowest of the first band
        ("0000020000000000", (0, 2**20, 0)),  # bit 41: the highest of the second
    ],
)
def test_bands_cut_the_hash_most_significant_first(phash: str, bands: tuple[int, ...]) -> None:
    assert hash_bands(phash) == bands
    assert sum(BAND_BITS) == 64


@pytest.mark.parametrize("distance", range(NEAR_IDENTICAL_BITS + 1))
def test_every_hash_within_the_near_bits_shares_a_band_neighbour(distance: int) -> None:
    """Pigeonhole: 8 differing bits over three bands leave one band with at most 2 of them, however
    the bits fall, including all in one band or spread across the band borders."""
    rng = random.Random(distance)
    for _ in range(300):
        query = f"{rng.getrandbits(64):016x}"
        stored = flipped(query, rng.sample(range(64), distance))
        assert hash_distance(query, stored) == distance
        near = band_neighbours(query)
        assert any(value in near[i] for i, value in enumerate(hash_bands(stored)))


def test_band_neighbours_are_the_values_within_two_bits() -> None:
    near = band_neighbours("0123456789abcdef")
    assert [len(values) for values in near] == [1 + 22 + 231, 1 + 21 + 210, 1 + 21 + 210]
    assert all(len(set(values)) == len(values) for values in near)
    assert band_neighbours("0123456789abcdef", bits=2) == tuple([v] for v in hash_bands("0123456789abcdef"))


def test_known_images_find_the_nearest_copy_among_many_and_no_far_one() -> None:
    """KnownImages looks copies up through the bands (it compared a query with every stored look: a
    queue of N candidates cost N x (holdout + datasets) comparisons)."""
    rng = random.Random(11)
    known = KnownImages(by_sha256={"a" * 64: "in the frozen holdout"})
    hashes = [f"{rng.getrandbits(64):016x}" for _ in range(2000)]
    for n, phash in enumerate(hashes):
        known.add_look(phash, f"a copy of photo {n}")
    target = hashes[1234]
    assert known.why("a" * 64, None) == "in the frozen holdout"  # the bytes first
    assert known.why("a" * 64, flipped(target, [1])) == "in the frozen holdout"
    assert known.why("b" * 64, flipped(target, [0, 10, 20, 30, 40, 50, 60, 63])) == (
        "a copy of photo 1234 (perceptual hash 8 of 64 bits apart)"
    )
    assert known.why("b" * 64, flipped(target, [0, 1, 2, 21, 22, 23, 43, 44, 45])) is None
    assert known.why("b" * 64, None) is None

    # nearest first, and a look known twice keeps its first reason
    known.add_look(flipped(target, [5]), "a copy of a closer photo")
    known.add_look(target, "a later reason for the same look")
    assert known.why("b" * 64, target) == "a copy of photo 1234 (perceptual hash 0 of 64 bits apart)"
    other = KnownImages(by_sha256={"c" * 64: "in dataset bureau"})
    other.add_look(flipped(target, [5, 6, 7]), "a copy of an image in dataset bureau")
    known.update(other)
    assert known.why("c" * 64) == "in dataset bureau"
    nearest = known.why("d" * 64, flipped(target, [5, 6, 7, 8]))
    assert nearest == "a copy of an image in dataset bureau (perceptual hash 1 of 64 bits apart)"


def test_copies_are_found_by_index_among_many_and_far_hashes_are_not(db_url: str) -> None:
    rng = random.Random(7)
    factory = open_database(db_url)
    at = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    hashes = [f"{rng.getrandbits(64):016x}" for _ in range(400)]
    with transaction(factory) as session:
        case = _case("SO20261102000001", at)
        session.add(case)
        for n, phash in enumerate(hashes):
            path, sha256 = f"/p/{n}.jpg", f"{n:064x}"
            row = Evidence(role="finding", path=path, sha256=sha256, phash=phash, captured_at=at, boxes=[])
            case.evidence.append(row)
    target = hashes[123]
    with factory() as session:
        row = session.scalars(sa.select(Evidence).where(Evidence.phash == target)).one()
        assert (row.phash_band0, row.phash_band1, row.phash_band2) == hash_bands(target)
        near = flipped(target, [0, 10, 20, 30, 40, 50, 60, 63])  # 8 bits, every band touched
        assert [e.phash for e in copies_of(session, "0" * 63 + "x", near)] == [target]
        far = flipped(target, [0, 1, 2, 21, 22, 23, 43, 44, 45])  # 9 bits: a different photo
        assert copies_of(session, "0" * 63 + "x", far) == []
        same_bytes = copies_of(session, f"{5:064x}", None)  # no hash: found by its bytes alone
        assert [e.path for e in same_bytes] == ["/p/5.jpg"]


def test_evidence_hashed_before_0014_is_found_after_the_upgrade(db_url: str) -> None:
    config = alembic_config(db_url)
    command.upgrade(config, "0013")
    engine = sa.create_engine(db_url)
    phash = "c3a5f00f0ff0a53c"
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO cases (number, source, record_type, event, major, cjt214, gbt47678, lat, lon,"
                " state, filed_at, first_seen_at, last_seen_at, description, auto_filed, version)"
                " VALUES ('SO20261102000001', 'public', 'event', 'exposed_garbage', '01', '0102', '06010',"
                " 34.72, 113.62, 'reported', '2026-11-02 08:00:00', '2026-11-02 08:00:00',"
                " '2026-11-02 08:00:00', '', false, 1)"
            )
        )
        for n, stored in enumerate([phash, None]):
            connection.execute(
                sa.text(
                    "INSERT INTO evidence (case_id, role, path, sha256, phash, captured_at, boxes)"
                    " VALUES (1, 'finding', :path, :sha, :phash, '2026-11-02 08:00:00', '[]')"
                ),
                {"path": f"/old/{n}.jpg", "sha": f"{n:064x}", "phash": stored},
            )
    engine.dispose()
    command.upgrade(config, "head")
    factory = open_database(db_url)
    with factory() as session:
        rows = session.execute(
            sa.select(
                Evidence.path, Evidence.phash_band0, Evidence.phash_band1, Evidence.phash_band2
            ).order_by(Evidence.id)
        ).all()
        assert [tuple(r) for r in rows] == [
            ("/old/0.jpg", *hash_bands(phash)),
            ("/old/1.jpg", None, None, None),
        ]
        assert [e.path for e in copies_of(session, "f" * 64, flipped(phash, [3, 33, 53]))] == ["/old/0.jpg"]
    factory.kw["bind"].dispose()


def query_plans(engine: sa.Engine, run: Callable[[], object], table: str) -> list[str]:
    """SQLite's plan for each SELECT on `table` that `run` sends: what an index change would alter."""
    sent: list[tuple[str, object]] = []

    def keep(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        if statement.lstrip().startswith("SELECT") and f"FROM {table}" in statement:
            sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", keep)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", keep)
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        return [" ".join(row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {s}", p)) for s, p in sent]


def test_the_intake_lookups_search_indexes_not_the_whole_table(tmp_path: Path) -> None:
    """The copy check and the duplicate rule run for every photo taken; a full scan of evidence or
    cases there makes an archive scan slower with every case it files (benchmarks/intake_lookups.py)."""
    factory = open_database(f"sqlite:///{tmp_path}/plans.db")
    engine = factory.kw["bind"]
    rules = load_case_rules(Settings())
    finding = Finding(
        event="exposed_garbage", lat=34.75, lon=113.65, seen_at=datetime(2026, 11, 2, tzinfo=UTC),
        photo_path="/p.jpg", photo_sha256="0" * 64,
    )  # fmt: skip
    with factory() as session:
        copies = query_plans(engine, lambda: copies_of(session, "0" * 64, "0123456789abcdef"), "evidence")
        duplicate = query_plans(engine, lambda: find_duplicate(session, finding, rules), "cases")
    assert copies and all("SCAN evidence" not in plan for plan in copies), copies
    assert (
        all(f"ix_evidence_phash_band{i}" in copies[0] for i in range(3)) and "ix_evidence_sha256" in copies[0]
    )
    assert len(duplicate) == 1
    place = "SEARCH cases USING INDEX ix_cases_place_lookup (event=? AND lat>? AND lat<?)"
    assert duplicate[0].startswith(place), duplicate
    with factory() as session:
        superseded = query_plans(
            engine, lambda: supersede_unreadable(session, path="/p.jpg", key="0" * 64), "photos"
        )
    assert superseded == ["SEARCH photos USING INDEX ix_photos_unreadable_path (path=?)"], superseded
    with factory() as session:
        waiting = query_plans(
            engine, lambda: waiting_copies(session, "0123456789abcdef", exclude_photo=1), "photos"
        )
    assert len(waiting) == 1 and "SCAN photos" not in waiting[0], waiting
    assert all(f"ix_photos_unfiled_phash_band{i}" in waiting[0] for i in range(3)), waiting
    engine.dispose()


def test_photos_hashed_before_0022_are_found_as_waiting_copies_after_the_upgrade(db_url: str) -> None:
    """Migration 0022 fills the bands of the photos recorded before it: an unlocated copy scanned by
    an older release joins its original's case when the original comes; a filed photo is no
    waiting copy, nor one already evidence of a case."""
    config = alembic_config(db_url)
    command.upgrade(config, "0021")
    engine = sa.create_engine(db_url)
    phash = "c3a5f00f0ff0a53c"
    rows = [("/old/copy.jpg", "unlocated"), ("/old/filed.jpg", "done"), ("/old/undated.jpg", "undated")]
    with engine.begin() as connection:
        for n, (path, status) in enumerate(rows):
            connection.execute(
                sa.text(
                    "INSERT INTO photos (sha256, phash, path, source, status, processed_at)"
                    " VALUES (:sha, :phash, :path, 'patrol', :status, '2026-11-02 08:00:00')"
                ),
                {"sha": f"{n:064x}", "phash": flipped(phash, [n]), "path": path, "status": status},
            )
    engine.dispose()
    command.upgrade(config, "head")
    factory = open_database(db_url)
    with factory() as session:
        stored = session.execute(
            sa.select(Photo.path, Photo.phash_band0, Photo.phash_band1, Photo.phash_band2).order_by(Photo.id)
        ).all()
        assert [tuple(r) for r in stored] == [
            (p, *hash_bands(flipped(phash, [n]))) for n, (p, _) in enumerate(rows)
        ]
        near = flipped(phash, [10, 30, 50])
        assert [p.path for p in waiting_copies(session, near, exclude_photo=0)] == [
            "/old/copy.jpg",
            "/old/undated.jpg",
        ]
        assert [
            p.path
            for p in waiting_copies(
                session, flipped(phash, [4, 5, 6, 24, 25, 26, 46, 47, 48]), exclude_photo=0
            )
        ] == []
    factory.kw["bind"].dispose()


def test_unreadable_rows_a_later_read_superseded_are_dropped_by_0016(db_url: str) -> None:
    """Before 0016 a path's unreadable row stayed beside the later row of the same path (a good copy
    that replaced a truncated file, other broken bytes): the upgrade drops the superseded ones and
    keeps every current problem, including a path that broke after it had read."""
    config = alembic_config(db_url)
    command.upgrade(config, "0015")
    engine = sa.create_engine(db_url)
    rows = [  # in the order scans recorded them
        ("/a/fixed.jpg", "unreadable", "truncated"),
        ("/a/broken.jpg", "unreadable", "not an image"),
        ("/a/broke-later.jpg", "done", None),
        ("/a/fixed.jpg", "done", None),
        ("/a/broke-later.jpg", "unreadable", "truncated"),
        ("/a/broken-again.jpg", "unreadable", "truncated"),
        ("/a/broken-again.jpg", "unreadable", "not an image"),
    ]
    with engine.begin() as connection:
        for n, (path, status, error) in enumerate(rows):
            connection.execute(
                sa.text(
                    "INSERT INTO photos (sha256, path, source, status, error, processed_at)"
                    " VALUES (:sha, :path, 'patrol', :status, :error, '2026-11-02 08:00:00')"
                ),
                {"sha": f"{n:064x}", "path": path, "status": status, "error": error},
            )
    engine.dispose()
    command.upgrade(config, "head")
    factory = open_database(db_url)
    with factory() as session:
        kept = session.execute(sa.select(Photo.path, Photo.status, Photo.error).order_by(Photo.id)).all()
    assert [tuple(row) for row in kept] == [rows[1], rows[2], rows[3], rows[4], rows[6]]
    factory.kw["bind"].dispose()
