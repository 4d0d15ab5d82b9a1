"""What writing the scan report costs on a database the size of a real archive's.

    .venv/bin/python benchmarks/report_scale.py [--photos 50000] [--cases 20000] [--unreadable 2000]
        [--root DIR]

Builds a SQLite database as a scan leaves it: `--cases` cases filed by `record_finding` (the scan's
own commit path; findings that land on an open case's duplicate add evidence to it), their evidence
pointing at a few real garbage-cn validation photos (each with its true sha256), and photo rows up to
`--photos` (`--unreadable` unreadable, some unlocated, undated and outside the grids, the rest done)
inserted in bulk. Then writes the report (`write_report`, what `streetorder scan` calls) in a fresh
process and prints its wall time and peak RSS, and the size of each file and the count of images
drawn. Run it at two sizes to see whether memory grows with the archive.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from serve.cases.db import open_database, transaction
from serve.cases.deadlines import load_calendar
from serve.cases.findings import CaseRules, Finding, record_finding
from serve.cases.grids import load_grids
from serve.cases.orm import Case, Photo
from serve.cases.report import write_report
from vision.core.boxes import Box
from vision.core.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
PHOTOS = Path("/work/shared/datasets/garbage-cn/images/val")
T0 = datetime(2025, 11, 1, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
BATCH = 500


def rules() -> CaseRules:
    return CaseRules(
        taxonomy=load_taxonomy(CONFIGS / "taxonomy.yaml"),
        calendar=load_calendar(CONFIGS / "calendar.yaml"),
        grids=load_grids(CONFIGS / "grids.example.geojson"),
    )


def build(url: str, photos: int, cases: int, unreadable: int, sources: list[Path]) -> None:
    """The database a scan of `photos` photos leaves, with `cases` cases."""
    case_rules = rules()
    assert case_rules.grids is not None
    lon_min, lat_min, lon_max, lat_max = case_rules.grids.bounds
    events = sorted({c.event for c in case_rules.taxonomy.classes if c.patrol and c.event})
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in sources]
    factory = open_database(url)
    rng = random.Random(7)
    made = findings = 0
    while made < cases:
        with transaction(factory) as session:
            for _ in range(BATCH):
                k = rng.randrange(len(sources))
                x1, y1 = rng.uniform(0, 400), rng.uniform(0, 400)
                update = record_finding(
                    session,
                    Finding(
                        event=events[findings % len(events)],
                        lat=rng.uniform(lat_min, lat_max),
                        lon=rng.uniform(lon_min, lon_max),
                        # a day apart every 50 findings: a few land on an open duplicate and add evidence
                        seen_at=T0 + timedelta(hours=25 * (findings // 50), minutes=findings % 50),
                        photo_path=str(sources[k]),
                        photo_sha256=shas[k],
                        boxes=(Box((x1, y1, x1 + 120, y1 + 90), 0.8, "garbage"),),
                        model_version="street-v1@000000000000",
                    ),
                    case_rules,
                )
                findings += 1
                made += update.created
                if made >= cases:
                    break
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    others = [("unlocated", None)] * 3 + [("undated", None), ("outside", None)] + [("done", None)] * 20
    with transaction(factory) as session:
        rows = []
        for n in range(photos):
            status, error = ("unreadable", "truncated file (OSError)") if n < unreadable else others[n % 25]
            rows.append(
                {
                    "sha256": hashlib.sha256(f"photo {n}".encode()).hexdigest(),
                    "path": f"/archive/{n // 1000:03d}/IMG_{n:07d}.jpg",
                    "source": "patrol",
                    "status": status,
                    "error": error,
                    "taken_at": None if status == "undated" else T0 + timedelta(seconds=n),
                    "processed_at": now,
                }
            )
            if len(rows) == 5000:
                session.execute(insert(Photo), rows)
                rows = []
        if rows:
            session.execute(insert(Photo), rows)
    with factory() as session:
        print(
            f"database: {session.scalar(select(func.count(Photo.id)))} photos, "
            f"{session.scalar(select(func.count(Case.id)))} cases from {findings} findings"
        )


def report(url: str, out: Path) -> None:
    """Write the report and print its seconds and this process's peak RSS (MB) as JSON."""
    factory = open_database(url)
    started = time.perf_counter()
    write_report(factory, out, rules())
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak}))


def sizes(out: Path) -> str:
    def mb(path: Path) -> str:
        return f"{path.stat().st_size / 2**20:.1f} MB" if path.exists() else "-"

    files = sorted(p for p in out.iterdir() if p.is_file())
    thumbs, crops = (len(list((out / folder).glob("*.jpg"))) for folder in ("thumbs", "crops"))
    drawn = f"{thumbs} thumbnails, {crops} crops"
    return ", ".join(f"{p.name} {mb(p)}" for p in files) + f"; {drawn}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=50_000)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--unreadable", type=int, default=2_000)
    parser.add_argument("--root", type=Path, help="where to build (default: a temporary folder)")
    parser.add_argument("--report-only", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report_only:
        report(args.report_only[0], Path(args.report_only[1]))
        return
    sources = sorted(PHOTOS.glob("*.jpg"))[:8]
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        url = f"sqlite:///{Path(tmp) / 'scan.db'}"
        started = time.perf_counter()
        build(url, args.photos, args.cases, args.unreadable, sources)
        print(f"built in {time.perf_counter() - started:.0f} s")
        out = Path(tmp) / "out"
        child = subprocess.run(
            [sys.executable, __file__, "--report-only", url, str(out)], capture_output=True, text=True
        )
        if child.returncode:
            sys.exit(child.stderr)
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"report: {measured['seconds']:.1f} s, peak RSS {measured['peak_mb']:.0f} MB")
        print(sizes(out))


if __name__ == "__main__":
    main()
