"""The service's read endpoints on a database the size a city bureau keeps after a few years.

    .venv/bin/python benchmarks/api_large_db.py [--cases 200000] [--db sqlite:///PATH] [--repeat 5]

Fills a database (default: a SQLite file under /tmp, kept and reused when it already holds the
cases asked for; `--db postgresql+psycopg://...` for a server) by bulk inserts into the ORM's
tables: `--cases` cases over three years, 400 unit grids of 20 streets, every event class and
state, cameras, two evidence rows per case and 1.5 photos per case (paths point at the
repository's real images), a flow log that walks each case to its state, supervision items and
held citizen requests, and 40 inspector accounts (the inspectors' reports, verifies and checks are
theirs). Then it starts the real app (TestClient, real database) and asks each read endpoint the
console and bureau systems use, printing per endpoint: p50 / p95 milliseconds, the SQL
statements one request runs, the response bytes and the peak RSS growth of the process while it ran
(Linux: VmHWM after resetting it through /proc/self/clear_refs).

What to look for: statements that grow with the page (N+1), memory that grows with the database
(unbounded responses), a filter much slower than the first page (a missing index). The figures
before and after migration 0019 and the fixes that came with it: docs/reliability.md, "A large
database".
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.engine import Engine

from serve.api.app import create_app
from serve.cases.auth import create_key
from serve.cases.db import transaction
from serve.cases.orm import Case, CitizenRequest, Evidence, FlowEntry, Photo, SupervisionItem, User
from serve.cases.settings import Settings

REPO = Path(__file__).resolve().parents[1]
IMAGES = [str(p) for p in sorted((REPO / "docs").rglob("*.jpg"))]
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=TZ)  # the service's clock: the bureau's morning
SPAN = timedelta(days=3 * 365)  # cases first seen over the three years before NOW
STREETS, GRIDS_PER_STREET = 20, 20
CAMERAS = [f"cam-{i:03d}" for i in range(60)]
# final states, weighted: old cases are mostly closed, the last weeks' still on their way
OLD_STATES = {
    "closed": 80,
    "not_filed": 8,
    "force_closed": 3,
    "cancelled": 3,
    "suspended": 2,
    "check_passed": 1,
}
NEW_STATES = {
    "reported": 15, "verified": 5, "filed": 8, "dispatched": 15, "handling": 15, "handled": 10,
    "check_passed": 5, "closed": 20, "not_filed": 5, "suspended": 2,
}  # fmt: skip
# the steps that bring a case to each state, after `report`: (action, state after it)
PATHS: dict[str, list[tuple[str, str]]] = {"reported": []}
_MAIN = [("confirm", "verified"), ("file", "filed"), ("dispatch", "dispatched"), ("start", "handling"),
         ("handle", "handled"), ("check_pass", "check_passed"), ("close", "closed")]  # fmt: skip
for _i, (_action, _state) in enumerate(_MAIN):
    PATHS[_state] = _MAIN[: _i + 1]
PATHS["not_filed"] = [("reject", "not_filed")]
PATHS["cancelled"] = [("cancel", "cancelled")]
PATHS["suspended"] = [*PATHS["dispatched"], ("suspend", "suspended")]
PATHS["force_closed"] = [*PATHS["dispatched"], ("force_close", "force_closed")]


def grid_layout(path: Path) -> list[tuple[str, str, float, float]]:
    """Write a layout of STREETS x GRIDS_PER_STREET square grids (about 500 m) over a 10 x 10 km
    city; returns (code, street, lat, lon of the south-west corner) per grid."""
    grids, features = [], []
    step = 0.1 / GRIDS_PER_STREET
    for s in range(STREETS):
        street = f"第{s + 1}街道"
        for g in range(GRIDS_PER_STREET):
            code = f"410103{s + 1:03d}{g // 10 + 1:03d}{g % 10 + 1:03d}"
            lat, lon = 34.70 + s * 0.1 / STREETS, 113.60 + g * step
            box = [[lon, lat], [lon + step, lat], [lon + step, lat + 0.005], [lon, lat + 0.005], [lon, lat]]
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [box]},
                    "properties": {
                        "code": code,
                        "street": street,
                        "community": f"{street}第{g // 10 + 1}社区",
                    },
                }
            )
            grids.append((code, street, lat, lon))
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return grids


def rows_for(
    n: int, rng: random.Random, events: dict[str, Any], departments: list[str], grids: list[Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Case number `n` (its id is n + 1) and its flow log."""
    key = rng.choice(list(events))
    spec = events[key]
    first = NOW - SPAN * (1 - rng.random() ** 0.7)  # more cases lately: the bureau grew
    recent = NOW - first < timedelta(days=30)
    weights = NEW_STATES if recent else OLD_STATES
    state = rng.choices(list(weights), list(weights.values()))[0]
    code, street, lat, lon = rng.choice(grids)
    steps, at, department, deadline = [], first, None, None
    for action, to_state in [("report", "reported"), *PATHS[state]]:
        at = at + timedelta(minutes=rng.uniform(5, 600)) if steps else first
        if action == "file":
            deadline = at + timedelta(hours=rng.choice((2, 24, 72)))
        if action == "dispatch":
            department = rng.choice(departments)
        steps.append(
            {
                "case_id": n + 1, "action": action, "from_state": steps[-1]["to_state"] if steps else None,
                "to_state": to_state, "operator": f"user{rng.randrange(40)}", "at": at,
                "seconds_used": 600.0, "overdue": bool(deadline and at > deadline), "note": None,
            }
        )  # fmt: skip
    source = rng.choices(["patrol_photo", "video", "public", "inspector"], [50, 30, 10, 10])[0]
    case = {
        "number": f"SO{first:%Y%m%d}{n:08d}", "source": source, "record_type": spec.record_type,
        "event": key, "major": spec.major, "cjt214": spec.cjt214, "gbt47678": spec.gbt47678,
        "description": f"{spec.name_zh} 第{n}号", "lat": lat + rng.uniform(0, 0.005),
        "lon": lon + rng.uniform(0, 0.005), "grid_code": code,
        "address": f"{street} {rng.randrange(1, 300)}号",
        "street": street, "community": None, "department": department, "state": state, "ai_review": None,
        "auto_filed": False, "camera_id": rng.choice(CAMERAS) if source == "video" else None,
        "filed_at": first, "deadline_at": deadline, "on_site_due_at": None, "first_seen_at": first,
        "last_seen_at": at, "closed_at": at if state in ("closed", "force_closed") else None, "version": 1,
    }  # fmt: skip
    return case, steps


def fill(
    engine_url: str,
    sessions: Any,
    cases: int,
    events: dict[str, Any],
    departments: list[str],
    grids: list[Any],
) -> None:
    """Bulk inserts in batches of 5,000 cases, with their evidence, photos and flow logs."""
    rng = random.Random(0)
    box = [{"cls": "garbage", "xyxy": [10, 20, 300, 400], "conf": 0.71}]
    started = time.perf_counter()
    photo_id = 0
    with sessions() as session:
        for batch in range(0, cases, 5000):
            case_rows, flow_rows, evidence_rows, photo_rows = [], [], [], []
            for n in range(batch, min(cases, batch + 5000)):
                case, steps = rows_for(n, rng, events, departments, grids)
                case_rows.append(case)
                flow_rows += steps
                for role in ("finding", "after" if case["state"] in ("handled", "closed") else "near"):
                    sha = hashlib.sha256(f"{n}-{role}".encode()).hexdigest()
                    path = IMAGES[n % len(IMAGES)]
                    linked = None
                    if role == "finding" or n % 2:  # 1.5 photos per case
                        photo_id += 1
                        linked = photo_id
                        photo_rows.append(
                            {
                                "id": photo_id, "sha256": sha, "path": path, "source": "patrol",
                                "status": "done", "width": 1920, "height": 1080, "lat": case["lat"],
                                "taken_at": case["first_seen_at"], "lon": case["lon"],
                                "grid_code": case["grid_code"], "model_version": "v20",
                                "detections": box, "processed_at": case["first_seen_at"],
                            }
                        )  # fmt: skip
                    evidence_rows.append(
                        {
                            "case_id": n + 1, "photo_id": linked, "role": role, "path": path, "sha256": sha,
                            "captured_at": case["first_seen_at"], "boxes": box, "confidence": 0.71,
                            "model_version": "v20", "extra": None,
                        }
                    )  # fmt: skip
            session.execute(insert(Photo), photo_rows)
            session.execute(insert(Case), case_rows)
            session.execute(insert(FlowEntry), flow_rows)
            session.execute(insert(Evidence), evidence_rows)
            session.commit()
            print(f"\r  filled {batch + len(case_rows):,} cases", end="", flush=True)
        for i in range(40):  # 挂牌督办 items: the worst spots of the last months, half still open
            code = grids[(i * 37) % len(grids)][0]
            session.add(
                SupervisionItem(
                    kind="spot",
                    name=f"督办 {code}",
                    grids=[code],
                    street=None,
                    reason="长期乱点",
                    department=departments[0],
                    deadline_at=NOW + timedelta(days=i - 20),
                    state="open" if i % 2 else "closed",
                    opened_by="leader",
                    opened_at=NOW - timedelta(days=60 - i),
                    open_cases_at_start=5,
                )
            )
        for i in range(200):  # held citizen requests awaiting a place
            session.add(
                CitizenRequest(
                    token=f"tok{i:08d}",
                    event=next(iter(events)),
                    fields={"description": f"求助 {i}"},
                    fields_sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                    reporter="open311",
                    received_at=NOW - timedelta(hours=i),
                )
            )
        session.commit()
    print(f"\r  filled {cases:,} cases in {time.perf_counter() - started:.0f} s ({engine_url})")


INSPECTORS = 40  # inspector accounts, 10 responsibility grids each


def add_inspectors(sessions: Any, grids: list[Any]) -> None:
    """Inspector accounts (once; a database filled before they were added gets them too): the
    cases reported from an inspector's patrol become their reports, and each verify and check step
    one inspector's, so that their monthly figures count what a bureau's would."""
    with sessions() as session:
        if session.scalar(select(func.count()).select_from(User).where(User.role == "inspector")):
            return
        first = (session.scalar(select(func.max(User.id))) or 0) + 1
        session.execute(
            insert(User),
            [
                {
                    "id": first + i, "username": f"inspector{i:02d}", "display_name": f"监督员{i}",
                    "role": "inspector", "grids": [grids[(i * 10 + g) % len(grids)][0] for g in range(10)],
                    "password_hash": "-", "created_at": NOW - SPAN,
                }
                for i in range(INSPECTORS)
            ],
        )  # fmt: skip
        reported = select(Case.id).where(Case.source == "inspector")
        session.execute(
            update(FlowEntry)
            .where(FlowEntry.action == "report", FlowEntry.case_id.in_(reported))
            .values(user_id=first + FlowEntry.case_id % INSPECTORS)
        )
        session.execute(
            update(FlowEntry)
            .where(FlowEntry.action.in_(["confirm", "correct", "reject", "check_pass", "check_fail"]))
            .values(user_id=first + (FlowEntry.case_id * 7 + 3) % INSPECTORS)
        )
        session.commit()


class Statements:
    """Counts the SQL statements the engine runs (an event listener, so every path counts)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux 4.0+)


def cursor_for(case_id: int) -> str:
    return base64.urlsafe_b64encode(str(case_id).encode()).decode().rstrip("=")


def endpoints(cases: int, grids: list[Any], events: dict[str, Any]) -> Iterator[tuple[str, str]]:
    street_prefix, grid = grids[0][0][:9], grids[123][0]
    event_key = list(events)[3]
    year = "since=2025-12-01&until=2026-12-01"
    yield "cases, first page", "/v1/cases?limit=50"
    yield "cases, deep cursor page", f"/v1/cases?limit=50&cursor={cursor_for(max(2, cases // 100))}"
    yield "cases, grid (street prefix)", f"/v1/cases?grid={street_prefix}"
    yield "cases, one grid", f"/v1/cases?grid={grid}"
    yield "cases, event", f"/v1/cases?event={event_key}"
    yield "cases, state", "/v1/cases?state=dispatched"
    yield "cases, since/until (a month)", "/v1/cases?since=2026-06-01&until=2026-07-01"
    yield "cases, overdue", "/v1/cases?overdue=true"
    yield "geojson, whole city (1000)", "/v1/cases.geojson?limit=1000"
    yield "geojson, street + open", f"/v1/cases.geojson?limit=1000&grid={street_prefix}&state=dispatched"
    yield "stats, a month", "/v1/stats?since=2026-11-01&until=2026-12-01"
    yield "stats, a year", f"/v1/stats?{year}"
    yield "stats, a month by street", "/v1/stats?since=2026-11-01&until=2026-12-01&group_by=street"
    yield "stats, 10-day ranking", "/v1/stats/ranking"
    yield "stats, worst spots", "/v1/stats/worst-spots?limit=10"
    yield "stats, daily (30 days)", "/v1/stats/daily"
    yield "supervision items", "/v1/supervision"
    yield "monthly district ranking", "/v1/stats/monthly-ranking?month=2026-11"
    yield "inspectors (a month)", "/v1/stats/inspectors?month=2026-11"
    yield "open311 requests list", "/open311/v2/requests.json"
    yield "citizen requests, held", "/v1/citizen-requests?state=held"
    yield "console: grids.geojson", "/v1/grids.geojson"
    yield "console: events", "/v1/events"
    yield "console: cases?limit=1", "/v1/cases?limit=1"
    yield "ledger.csv, a year", f"/v1/ledger.csv?{year}"
    yield "ledger.xlsx, a year", f"/v1/ledger.xlsx?{year}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--db", help="database URL (default: a SQLite file under /tmp, reused)")
    parser.add_argument("--repeat", type=int, default=5, help="requests per endpoint (p50/p95 of them)")
    parser.add_argument("--only", help="only endpoints whose label contains this text")
    args = parser.parse_args()
    work = Path(tempfile.gettempdir()) / f"streetorder-bigdb-{args.cases}"
    work.mkdir(exist_ok=True)
    url = args.db or f"sqlite:///{work}/cases.db"
    grids = grid_layout(work / "grids.geojson")
    configs = work / "configs"  # the packaged ones, less the cameras (placed on the example layout)
    shutil.rmtree(configs, ignore_errors=True)
    shutil.copytree(Settings().configs_dir, configs, ignore=shutil.ignore_patterns("cameras.yaml"))
    settings = Settings.model_validate(
        {
            "db_url": url, "secret": "benchmark-only-secret-0123456789", "grids": work / "grids.geojson",
            "configs_dir": configs, "evidence_dir": work / "evidence",
            "annotations_dir": work / "annotations",
        }
    )  # fmt: skip
    with TestClient(create_app(settings, clock=lambda: NOW.astimezone(UTC))) as client:
        state = client.app.state.service  # type: ignore[attr-defined]
        events = state.domain.rules.taxonomy.events
        with state.sessions() as session:
            stored = session.scalar(select(func.count()).select_from(Case)) or 0
        if stored == 0:
            fill(url, state.sessions, args.cases, events, list(state.domain.routing.departments), grids)
        elif stored < args.cases:
            raise SystemExit(f"{url} holds {stored:,} cases, not {args.cases:,}: name another --db")
        add_inspectors(state.sessions, grids)
        with transaction(state.sessions) as session:
            key, _ = create_key(
                session, name="bench", scopes=["admin"], pepper=state.verifier.pepper, now=NOW
            )
        headers = {"Authorization": f"Bearer {key}"}
        statements = Statements(state.sessions.kw["bind"])
        print(
            f"\n{'endpoint':<32} {'p50 ms':>8} {'p95 ms':>8} {'SQL':>5} {'bytes':>11} {'peak RSS +MiB':>14}"
        )
        for label, path in endpoints(args.cases, grids, events):
            if args.only and args.only not in label:
                continue
            times, peak = [], 0
            for _ in range(args.repeat):
                reset_peak()
                before = rss_kib("VmRSS")
                statements.count = 0
                started = time.perf_counter()
                response = client.get(path, headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                peak = max(peak, rss_kib("VmHWM") - before)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
            p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
            print(
                f"{label:<32} {statistics.median(times):>8.0f} {p95:>8.0f} {statements.count:>5}"
                f" {len(response.content):>11,} {peak / 1024:>14.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
