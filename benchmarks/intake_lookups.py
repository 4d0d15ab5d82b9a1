"""How long the lookups intake makes for every photo take as a database fills up.

    .venv/bin/python benchmarks/intake_lookups.py [--rows 1000 10000 100000] [--db sqlite:///...]

Every photo a scan or an upload takes is checked against the evidence already stored (the same
bytes, or a perceptual hash within NEAR_IDENTICAL_BITS: `copies_of`, serve/cases/intake.py), and
each finding looks for an open case of its event within the radius and time window (`find_duplicate`,
serve/cases/findings.py). The benchmark fills the cases and evidence tables up to each `--rows`
(bulk inserts: random hashes with their bands as the ORM writes them; cases spread over a year and
a 10 x 10 km city), then prints the milliseconds a lookup takes: the copy check of a new photo
(and whether an 8-bit copy of a stored hash is found), and the duplicate lookup of a photo newer
than every case and of one older than every case (an archive scanned out of time order). A photo
that files a case also looks for the earlier copies of itself that could file none (`waiting_copies`,
migration 0022): as many photo rows are stored, a quarter of them unlocated.

Before migrations 0014 / 0015 (2026-12-06, 2-core development machine, under a training run): the
copy check read every stored hash, 28 / 486 / 1,885 ms at 1k / 10k / 50k evidence rows; the
duplicate lookup of an older photo read every later case, 12 / 191 / 2,408 ms at 10k / 100k / 1M.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from serve.cases.db import open_database
from serve.cases.findings import Finding, find_duplicate, load_case_rules
from serve.cases.intake import copies_of, waiting_copies
from serve.cases.orm import Case, Evidence, Photo
from serve.cases.settings import get_settings
from vision.core.phash import hash_bands

BANDS = ("phash_band0", "phash_band1", "phash_band2")
START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_S = 365 * 86400


def case_row(n: int, rng: random.Random) -> dict[str, object]:
    at = START + timedelta(seconds=rng.uniform(0, YEAR_S))
    return {
        "number": f"SO{n:012d}", "source": "patrol_photo", "record_type": "event", "event": "exposed_garbage",
        "major": "01", "cjt214": "0102", "gbt47678": "06010", "description": "", "auto_filed": False,
        "lat": 34.70 + rng.uniform(0, 0.09), "lon": 113.60 + rng.uniform(0, 0.11), "state": "reported",
        "filed_at": at, "first_seen_at": at, "last_seen_at": at, "version": 1,
    }  # fmt: skip


def evidence_row(n: int, phash: str) -> dict[str, object]:
    return {
        "case_id": n + 1, "role": "finding", "path": f"/archive/{n}.jpg", "captured_at": START,
        "sha256": hashlib.sha256(str(n).encode()).hexdigest(), "phash": phash,
        "boxes": [{"cls": "garbage", "xyxy": [10, 20, 300, 400], "conf": 0.6}], "extra": None,
        **dict(zip(BANDS, hash_bands(phash), strict=True)),
    }  # fmt: skip


def photo_row(n: int, phash: str) -> dict[str, object]:
    return {
        "sha256": hashlib.sha256(b"photo %d" % n).hexdigest(), "path": f"/archive/{n}.jpg",
        "source": "patrol", "status": "unlocated" if n % 4 == 0 else "done", "processed_at": START,
        "phash": phash, **dict(zip(BANDS, hash_bands(phash), strict=True)),
    }  # fmt: skip


def ms_each(lookup: Callable[[int], object], times: int) -> float:
    started = time.perf_counter()
    for i in range(times):
        lookup(i)
    return (time.perf_counter() - started) / times * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--db", help="database URL (default: a new SQLite file)")
    parser.add_argument("--lookups", type=int, default=50)
    args = parser.parse_args()
    factory = open_database(args.db or f"sqlite:///{tempfile.mkdtemp()}/intake.db")
    rules = load_case_rules(get_settings())
    rng = random.Random(0)

    def finding(at: datetime) -> Finding:
        return Finding("exposed_garbage", 34.745, 113.655, at, "/new.jpg", "0" * 64)

    print(
        "rows (cases, evidence, photos) | copy check ms | 8-bit copy found | duplicate ms, newer photo"
        " | older photo | waiting copies ms"
    )
    stored = 0
    with factory() as session:
        for target in sorted(args.rows):
            while stored < target:
                count = min(target, stored + 10000) - stored
                session.execute(insert(Case), [case_row(stored + i, rng) for i in range(count)])
                hashes = [f"{rng.getrandbits(64):016x}" for _ in range(count)]
                session.execute(insert(Evidence), [evidence_row(stored + i, h) for i, h in enumerate(hashes)])
                looks = [f"{rng.getrandbits(64):016x}" for _ in range(count)]
                session.execute(insert(Photo), [photo_row(stored + i, h) for i, h in enumerate(looks)])
                stored += count
            session.commit()
            copy_ms = ms_each(
                lambda i: copies_of(
                    session, hashlib.sha256(b"new %d" % i).hexdigest(), f"{rng.getrandbits(64):016x}"
                ),
                args.lookups,
            )
            original = session.scalar(select(Evidence.phash).where(Evidence.id == stored // 2)) or ""
            value = int(original, 16)
            for bit in rng.sample(range(64), 8):
                value ^= 1 << bit
            found = [e.phash for e in copies_of(session, "0" * 64, f"{value:016x}")] == [original]
            newer = ms_each(
                lambda i: find_duplicate(session, finding(START + timedelta(days=366)), rules), args.lookups
            )
            older = ms_each(
                lambda i: find_duplicate(session, finding(START - timedelta(days=1)), rules), args.lookups
            )
            waiting = ms_each(
                lambda i: waiting_copies(session, f"{rng.getrandbits(64):016x}", exclude_photo=0),
                args.lookups,
            )
            print(
                f"{stored:>30,} | {copy_ms:>13.1f} | {'yes' if found else 'NO':>16} | {newer:>25.1f}",
                f"| {older:>11.1f} | {waiting:.1f}",
            )
            session.expunge_all()


if __name__ == "__main__":
    main()
