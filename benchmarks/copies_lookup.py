"""How long the intake's copy check takes as evidence accumulates: `copies_of` per photo.

    .venv/bin/python benchmarks/copies_lookup.py [--rows 1000 10000 100000] [--db sqlite:///...]

Every photo a scan or an upload takes is checked against the evidence already stored (the same
bytes, or a perceptual hash within NEAR_IDENTICAL_BITS: serve/cases/intake.py). The benchmark fills
the evidence table with random hashes up to each `--rows` (bulk inserts, bands as the ORM writes
them), then prints the milliseconds a lookup of a new photo takes and checks that an 8-bit copy of
a stored hash is found. A check that read every stored hash took 28 / 486 / 1,885 ms at 1k / 10k /
50k rows on the 2-core development machine (2026-12-06, under a training run); through the
indexed bands it stays at a few ms.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from serve.cases.db import open_database, transaction
from serve.cases.intake import copies_of
from serve.cases.orm import Case, Evidence
from vision.core.phash import hash_bands

BANDS = ("phash_band0", "phash_band1", "phash_band2")
AT = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def seed_case() -> Case:
    return Case(
        number="SO20261102000001", source="public", record_type="event", event="exposed_garbage",
        major="01", cjt214="0102", gbt47678="06010", lat=34.72, lon=113.62, state="reported",
        filed_at=AT, first_seen_at=AT, last_seen_at=AT,
    )  # fmt: skip


def evidence_row(case_id: int, n: int, phash: str) -> dict[str, object]:
    return {
        "case_id": case_id, "role": "finding", "path": f"/archive/{n}.jpg", "captured_at": AT,
        "sha256": hashlib.sha256(str(n).encode()).hexdigest(), "phash": phash,
        "boxes": [{"cls": "garbage", "xyxy": [10, 20, 300, 400], "conf": 0.6}], "extra": None,
        **dict(zip(BANDS, hash_bands(phash), strict=True)),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--db", help="database URL (default: a new SQLite file)")
    parser.add_argument("--lookups", type=int, default=50)
    args = parser.parse_args()
    factory = open_database(args.db or f"sqlite:///{tempfile.mkdtemp()}/copies.db")
    rng = random.Random(0)
    with transaction(factory) as session:
        case = seed_case()
        session.add(case)
    print("evidence rows | ms a lookup (new photo) | 8-bit copy found")
    with factory() as session:
        stored = session.scalar(select(func.count(Evidence.id))) or 0
        for target in sorted(args.rows):
            while stored < target:
                batch = [
                    evidence_row(case.id, n, f"{rng.getrandbits(64):016x}")
                    for n in range(stored, min(target, stored + 10000))
                ]
                session.execute(insert(Evidence), batch)
                stored += len(batch)
            session.commit()
            started = time.perf_counter()
            for i in range(args.lookups):
                copies_of(session, hashlib.sha256(b"new %d" % i).hexdigest(), f"{rng.getrandbits(64):016x}")
            ms = (time.perf_counter() - started) / args.lookups * 1000
            original = session.scalar(select(Evidence.phash).where(Evidence.id == stored // 2)) or ""
            value = int(original, 16)
            for bit in rng.sample(range(64), 8):
                value ^= 1 << bit
            found = [e.phash for e in copies_of(session, "0" * 64, f"{value:016x}")] == [original]
            print(f"{stored:>13,} | {ms:>23.1f} | {'yes' if found else 'NO'}")
            session.expunge_all()


if __name__ == "__main__":
    main()
