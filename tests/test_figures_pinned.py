"""Every figure of /v1/stats (and its rankings) and every cell of the ledger (.csv and .xlsx), pinned
on a seeded database of 120 cases: overdue, cancelled, forced closes, rework, extensions,
suspensions, cases sent back, deadlines on holidays, several grids and streets, a class since
removed from the taxonomy, and cases on both sides of the new year. The figures and the ledger
are computed from plain rows of only the columns they need (a year of a city's cases built as
ORM objects took 36 to 78 s); this keeps them what they were. tests/pinned_figures.json holds
the answers of the code they were first computed with; `STREETORDER_PIN=write` rewrites it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import canonicalize
from zoneinfo import ZoneInfo

from conftest import Service
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from sqlalchemy import select

from serve.cases.db import transaction
from serve.cases.ledger import COLUMNS, DATE_FORMAT
from serve.cases.orm import Case, Evidence, FlowEntry

PINNED = Path(__file__).with_name("pinned_figures.json")
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 1, 8, 9, 0, tzinfo=TZ)  # the service's clock when the figures are asked
GRIDS = [
    ("410103001001001", "淮河路街道"),
    ("410103001001002", "淮河路街道"),
    ("410103001002001", "淮河路街道"),
]
OTHER_STREETS = ["东风路街道", None]  # a street outside the layout, and none
DEPARTMENTS = ["环卫所", "城管中队", "市政所"]
# first sightings: the national-day holiday, the weeks around the new year (its holiday 01-01..03)
WINDOWS = [(datetime(2025, 9, 28, tzinfo=TZ), 12), (datetime(2025, 12, 22, tzinfo=TZ), 16)]


def flow_of(rng: random.Random, first: datetime) -> tuple[list[tuple[str, str, datetime]], datetime | None]:
    """(action, state after it, when) from the report on, and the deadline set at filing."""
    steps = [("report", "reported", first)]
    at, deadline = first, None

    def step(action: str, state: str) -> None:
        nonlocal at
        at = at + timedelta(minutes=rng.choice((7, 45, 130, 600, 1500, 3000)))
        steps.append((action, state, at))

    review = rng.choices(["confirm", "correct", "reject", "none", "auto"], [50, 10, 12, 8, 20])[0]
    if review == "none":
        return steps, None
    if review == "reject":
        step("reject", "not_filed")
        return steps, None
    if review != "auto":
        step(review, "verified")
        if rng.random() < 0.08:
            step("cancel", "cancelled")
            return steps, None
    step("file", "filed")
    deadline = at + timedelta(hours=rng.choice((2, 4, 24, 72)))
    if rng.random() < 0.1:
        return steps, deadline
    step("dispatch", "dispatched")
    if rng.random() < 0.12:
        step("send_back", "filed")
        if rng.random() < 0.5:
            return steps, deadline
        step("dispatch", "dispatched")
    if rng.random() < 0.08:
        step("cancel", "cancelled")
        return steps, deadline
    step("start", "handling")
    if rng.random() < 0.15:
        step("suspend", "suspended")
        if rng.random() < 0.4:
            return steps, deadline
        step("resume", "handling")
    if rng.random() < 0.15:
        step("extend", "handling")
        deadline += timedelta(hours=24)
    if rng.random() < 0.08:
        step("force_close", "force_closed")
        return steps, deadline
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        step("handle", "handled")
        if rng.random() < 0.35:
            step("check_fail", "handling")
        else:
            break
    if steps[-1][0] == "check_fail" or rng.random() < 0.15:
        return steps, deadline
    step("check_pass", "check_passed")
    if rng.random() < 0.85:
        step(rng.choice(("close", "close", "close", "force_close")), steps[-1][1])
        steps[-1] = (steps[-1][0], "closed" if steps[-1][0] == "close" else "force_closed", steps[-1][2])
    return steps, deadline


def seed(service: Service, events: list[str], count: int = 120) -> None:
    rng = random.Random(20260108)
    sessions = service.client.app.state.service.sessions  # type: ignore[attr-defined]
    with transaction(sessions) as session:
        for n in range(count):
            start, days = WINDOWS[n % len(WINDOWS)]
            first = start + timedelta(minutes=rng.randrange(days * 24 * 60))
            steps, deadline = flow_of(rng, first)
            code, street = rng.choice([*GRIDS, (None, None)])
            if code and rng.random() < 0.15:
                street = rng.choice(OTHER_STREETS)
            routed = [s for s in steps if s[0] in ("dispatch", "send_back")]
            event = rng.choice(events)
            state = steps[-1][1]
            description = rng.choice([f"垃圾 第{n}号", '=HYPERLINK("http://x")', "+1 乱堆", ""])
            case = Case(
                number=f"SO{first:%Y%m%d}{n:06d}",
                source=rng.choice(
                    ["patrol_photo", "video", "public", "inspector", "hotline", "leader", "media"]
                ),
                record_type="event",
                event=event,
                major="01",
                cjt214="0102",
                gbt47678="06010",
                description=description,
                lat=34.72 + rng.random() / 100,
                lon=113.62 + rng.random() / 100,
                address=rng.choice([None, f"{street or ''} {n}号", "@地址"]),
                grid_code=code,
                street=street,
                community=rng.choice([None, "测试社区"]),
                department=rng.choice(DEPARTMENTS) if routed else None,
                state=state,
                auto_filed=steps[1][0] == "file" if len(steps) > 1 else False,
                filed_at=first,
                deadline_at=deadline,
                first_seen_at=first,
                last_seen_at=steps[-1][2],
                closed_at=steps[-1][2] if state in ("closed", "force_closed") else None,
            )
            session.add(case)
            session.flush()
            before = None
            for action, to_state, at in steps:
                session.add(
                    FlowEntry(
                        case_id=case.id,
                        action=action,
                        from_state=before,
                        to_state=to_state,
                        operator=rng.choice(["张三", "李四", "=cmd", "王五"]),
                        at=at,
                        seconds_used=60.0,
                        overdue=deadline is not None and at > deadline and action != "report",
                        note=rng.choice([None, "已清理", "-2 处"])
                        if action in ("close", "force_close")
                        else None,
                    )
                )
                before = to_state
            handled = sum(s[0] == "handle" for s in steps)
            for role in ["finding", *(["after"] * min(handled, 2)), *(["near"] if n % 3 else [])]:
                sha = hashlib.sha256(f"{n}-{role}-{rng.random()}".encode()).hexdigest()
                session.add(
                    Evidence(
                        case_id=case.id, role=role, path=f"{sha}.jpg", sha256=sha, captured_at=first, boxes=[]
                    )
                )


def workbook(body: bytes) -> dict[str, Any]:
    """Every sheet's cell values, links, date formats, column widths (each column's, as a writer may
    give neighbours of one width as a range) and filter, and the sha256 of each part's XML under xl/
    in its canonical form (C14N 2.0). The values, links, formats, widths and filter are those the
    openpyxl writer gave; the parts' hashes those of XlsxWriter, which replaced it."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        parts = sorted(n for n in archive.namelist() if n.startswith("xl/"))
        sheets: dict[str, Any] = {
            n: hashlib.sha256(canonicalize(archive.read(n).decode("utf-8")).encode("utf-8")).hexdigest()
            for n in parts
        }
    for sheet in load_workbook(io.BytesIO(body)).worksheets:
        cells = [c for row in sheet.iter_rows() for c in row]
        sheets[sheet.title] = {
            "values": [[None if c.value is None else str(c.value) for c in row] for row in sheet.iter_rows()],
            "links": {c.coordinate: c.hyperlink.target for c in cells if c.hyperlink},
            "formats": {c.coordinate: c.number_format for c in cells if c.number_format != "General"},
            "widths": {
                get_column_letter(i): d.width
                for d in sheet.column_dimensions.values()
                for i in range(d.min, d.max + 1)
            },
            "filter": sheet.auto_filter.ref,
        }
    return sheets


STATS = [
    "",
    "?since=2025-01-01&until=2026-01-01",
    "?since=2025-12-25&until=2026-01-05",
    *(f"?since=2025-01-01&until=2026-01-01&group_by={g}" for g in ("grid", "street", "department", "event")),
    "?since=2025-09-01&until=2026-02-01&group_by=street",
    "/ranking?day=2025-12-25",
    "/ranking?day=2026-01-02",
    "/ranking?day=2025-10-01",
    "/monthly-ranking?month=2025-12",
    "/monthly-ranking?month=2025-10",
]
LEDGERS = [
    "?since=2025-09-01&until=2026-02-01",
    "?since=2025-12-25&until=2026-01-05",
    "?since=2025-09-01&until=2026-02-01&street=淮河路街道",
    "?since=2025-09-01&until=2026-02-01&department=环卫所",
]


def figures(service: Service) -> dict[str, Any]:
    headers = service.auth("cases:read")
    out: dict[str, Any] = {}
    for query in STATS:
        answer = service.client.get(f"/v1/stats{query}", headers=headers)
        assert answer.status_code == 200, (query, answer.text)
        out[f"stats{query}"] = answer.json()
    for query in LEDGERS:
        text = service.client.get(f"/v1/ledger.csv{query}", headers=headers)
        assert text.status_code == 200 and text.content.startswith(b"\xef\xbb\xbf"), (query, text.text)
        out[f"ledger.csv{query}"] = list(csv.reader(io.StringIO(text.content.decode("utf-8-sig"))))
    book = service.client.get(f"/v1/ledger.xlsx{LEDGERS[0]}", headers=headers)
    assert book.status_code == 200, book.text
    out[f"ledger.xlsx{LEDGERS[0]}"] = workbook(book.content)
    return out


def test_the_figures_and_the_ledger_are_what_they_were(service: Service) -> None:
    events = sorted(service.client.app.state.service.domain.rules.taxonomy.events)  # type: ignore[attr-defined]
    seed(service, [*events[:6], "a_class_since_removed"])
    service.clock.at = NOW
    found = json.loads(json.dumps(figures(service), ensure_ascii=False))
    if os.environ.get("STREETORDER_PIN") == "write":
        lines = (
            f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
            for k, v in found.items()
        )
        PINNED.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    assert found.keys() == pinned.keys()
    for key in pinned:
        assert found[key] == pinned[key], key
    ledger = pinned["ledger.csv?since=2025-09-01&until=2026-02-01"]
    states = {row[18] for row in ledger[1:]}  # the seed reaches every kind of case it is meant to
    assert {"作废", "强制结案", "挂账", "已结案", "不予立案", "处理中", "待核实"} <= states, states
    assert {row[19] for row in ledger[1:]} == {"是", "否"}
    assert any(int(row[20]) > 0 for row in ledger[1:]) and any(int(row[21]) > 0 for row in ledger[1:])


def test_the_ledger_workbook_reads_back_typed_formatted_and_inert(service: Service) -> None:
    """The .xlsx of the seeded cases as a spreadsheet reads it, cell by cell against the .csv: text as
    text, times as dates in the ledger's date format, numbers as numbers, the after-photo cell a link
    in the link font, the header bold on its fill, frozen with the first column, under a filter; and
    text from outside that would start a formula (the seed's descriptions `=HYPERLINK(...)` and
    `+1 乱堆` and closing notes `-2 处`, addresses) reads with its leading apostrophe, never as a
    formula; an empty description is a blank cell."""
    events = sorted(service.client.app.state.service.domain.rules.taxonomy.events)  # type: ignore[attr-defined]
    seed(service, events[:6])
    hostile = ['=HYPERLINK("http://x","点我")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "金水路 12 号"]
    with transaction(service.client.app.state.service.sessions) as session:  # type: ignore[attr-defined]
        cases = session.scalars(select(Case).order_by(Case.id).limit(len(hostile))).all()
        for case, text in zip(cases, hostile, strict=True):
            case.address = text
    service.clock.at = NOW
    headers = service.auth("cases:read")
    body = service.client.get(f"/v1/ledger.xlsx{LEDGERS[0]}", headers=headers).content
    text = service.client.get(f"/v1/ledger.csv{LEDGERS[0]}", headers=headers).content.decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    sheet = load_workbook(io.BytesIO(body))["问题台账"]

    assert sheet.freeze_panes == "B2" and sheet.auto_filter.ref == f"A1:AB{sheet.max_row}"
    header = next(sheet.iter_rows(max_row=1))
    assert [c.value for c in header] == [title for _, title in COLUMNS] == lines[0]
    assert all(c.font.b and c.fill.patternType == "solid" for c in header)
    assert {c.fill.fgColor.rgb[-6:] for c in header} == {"DDE6DA"}
    kinds: dict[str, set[type]] = {key: set() for key, _ in COLUMNS}
    rows = list(sheet.iter_rows(min_row=2))
    assert len(rows) == len(lines) - 1 > 100
    for row, line in zip(rows, lines[1:], strict=True):
        for (key, _), cell, written in zip(COLUMNS, row, line, strict=True):
            assert cell.data_type != "f", (cell.coordinate, cell.value)
            kinds[key].add(type(cell.value))
            if isinstance(cell.value, datetime):
                assert cell.number_format == DATE_FORMAT and cell.value.isoformat(sep=" ") == written
            else:
                assert (
                    cell.number_format == "General"
                    and ("" if cell.value is None else str(cell.value)) == written
                )
            if key == "after_photos" and cell.value is not None:
                assert cell.hyperlink.target == written.split("\n")[0], cell.coordinate
                assert cell.font.u == "single" and cell.font.color.rgb[-6:] == "1F5FA8"
            else:
                assert cell.hyperlink is None, cell.coordinate
    assert kinds["lat"] == kinds["lon"] == {float} and kinds["reworks"] == kinds["extensions"] == {int}
    assert kinds["first_seen_at"] == {datetime} and kinds["closed_at"] == {datetime, type(None)}
    assert kinds["number"] == {str} and kinds["description"] == kinds["after_photos"] == {str, type(None)}
    assert [r[9].value for r in rows[: len(hostile)]] == [*("'" + t for t in hostile[:-1]), hostile[-1]]
    texts = {c.value for r in rows for c in r if isinstance(c.value, str)}
    assert {'\'=HYPERLINK("http://x")', "'+1 乱堆", "'-2 处"} <= texts
