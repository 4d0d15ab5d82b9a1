"""The read endpoints stay bounded as years of cases pile up (benchmarks/api_large_db.py measures
them at 200,000 cases; docs/reliability.md has the numbers): a list of supervision items counts
its open cases in one query whatever the number of items, periods and grid prefixes are read
through indexes (migration 0019), and the ledger is streamed, not built whole in memory."""

from __future__ import annotations

import csv
import io
import sqlite3
import tracemalloc
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from xml.etree import ElementTree

import pytest
import sqlalchemy as sa
from alembic import command
from conftest import SERVICE_START, Service
from openpyxl import load_workbook
from test_api_storage import _case, alembic_config
from test_intake_lookups import query_plans

from serve.cases.db import open_database, transaction
from serve.cases.ledger import COLUMNS, MAX_LINKS, WIDTH_SAMPLE, LedgerRow, to_xlsx
from serve.cases.orm import Case, Evidence, FlowEntry, SupervisionItem

GRIDS = [f"41010300100100{i}" for i in range(1, 10)]


def add_cases(service: Service, count: int, state: str = "filed") -> None:
    """`count` cases over the grids, one a day back from the service's clock, in `state`."""
    sessions = service.client.app.state.service.sessions  # type: ignore[attr-defined]
    with transaction(sessions) as session:
        for n in range(count):
            case = _case(f"SO{n:014d}", SERVICE_START - timedelta(days=n))
            case.state, case.grid_code = state, GRIDS[n % len(GRIDS)]  # type: ignore[assignment]
            session.add(case)


def add_items(service: Service, count: int) -> None:
    sessions = service.client.app.state.service.sessions  # type: ignore[attr-defined]
    with transaction(sessions) as session:
        for n in range(count):
            session.add(
                SupervisionItem(
                    kind="section",
                    name=f"督办 {n}",
                    grids=GRIDS[n % 3 : n % 3 + 2],
                    street=None,
                    reason="乱点",
                    department="淮河路街道办事处",
                    deadline_at=SERVICE_START,
                    state="open" if n % 4 else "closed",
                    opened_by="chief",
                    opened_at=SERVICE_START,
                    open_cases_at_start=1,
                )
            )


@contextmanager
def statements(service: Service) -> Iterator[list[str]]:
    """The SQL statements the service runs inside the block."""
    engine = service.client.app.state.service.sessions.kw["bind"]  # type: ignore[attr-defined]
    sent: list[str] = []

    def keep(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", keep)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", keep)


def test_supervision_items_are_listed_with_a_number_of_statements_independent_of_how_many(
    service: Service,
) -> None:
    """Each open item's open cases were loaded by a query of its own (N+1): 40 items, 41 queries."""
    add_cases(service, 18)
    add_items(service, 2)
    service.client.get("/v1/supervision", headers=service.auth("cases:read"))  # the key is known after
    with statements(service) as few:
        answer = service.client.get("/v1/supervision", headers=service.auth("cases:read"))
    assert answer.status_code == 200
    first = answer.json()
    add_items(service, 10)
    with statements(service) as many:
        answer = service.client.get("/v1/supervision", headers=service.auth("cases:read"))
    items = answer.json()
    assert len(items) == 12 and len(many) == len(few), (len(few), len(many))
    assert items[-2:] == first
    for item in items:  # each grid holds 2 of the 18 filed cases; closed items count none
        assert item["open_cases"] == (2 * len(item["grids"]) if item["state"] == "open" else 0), item


def test_periods_and_grid_prefixes_are_read_through_indexes(service: Service) -> None:
    """A month of /v1/cases, /v1/stats or the ledger, and a street's cases, read every case ever
    filed before migration 0019 and the range form of the grid prefix (a LIKE serves no index)."""
    if not service.settings.db_url.startswith("sqlite"):
        return  # the plans are SQLite's; PostgreSQL gets the same index from the same migration
    add_cases(service, 30)
    engine = service.client.app.state.service.sessions.kw["bind"]  # type: ignore[attr-defined]
    headers = service.auth("cases:read")
    for path in (
        "/v1/cases?since=2025-09-01&until=2025-09-15",
        "/v1/cases?grid=410103001",
        "/v1/cases?grid=4101030019",
        "/v1/stats?since=2025-09-01&until=2025-09-15",
        "/v1/stats/daily",
        "/v1/ledger.csv?since=2025-09-01&until=2025-09-15",
    ):
        plans = query_plans(engine, lambda: service.client.get(path, headers=headers), "cases")  # noqa: B023
        assert plans and all("SCAN cases" not in plan for plan in plans), (path, plans)
    grids = service.client.get("/v1/cases?grid=41010300100100&limit=100", headers=headers).json()
    assert grids["total"] == 30 and {c["grid_code"] for c in grids["items"]} == set(GRIDS)
    one = service.client.get(f"/v1/cases?grid={GRIDS[8]}", headers=headers).json()
    assert (
        one["total"] == 3
        and service.client.get("/v1/cases?grid=4101030019", headers=headers).json()["total"] == 0
    )


def test_migration_0019_adds_the_first_seen_index_and_takes_it_back(db_url: str) -> None:
    config = alembic_config(db_url)
    command.upgrade(config, "0018")
    engine = sa.create_engine(db_url)

    def indexes() -> set[str]:
        return {str(i["name"]) for i in sa.inspect(engine).get_indexes("cases")}

    assert "ix_cases_first_seen_at" not in indexes()
    command.upgrade(config, "head")
    assert "ix_cases_first_seen_at" in indexes()
    command.downgrade(config, "0018")
    assert "ix_cases_first_seen_at" not in indexes()
    engine.dispose()
    open_database(db_url).kw["bind"].dispose()  # and up again, as the service does


def test_the_ledger_csv_is_streamed_with_every_case_of_the_period(service: Service) -> None:
    """The .csv was built whole in memory (every case of a year with its flow and evidence, then
    the text): it is now written as the cases are read, so its memory does not grow with the year."""
    add_cases(service, 120)
    params = {"since": "2025-06-01", "until": "2025-10-01"}
    with service.client.stream(
        "GET", "/v1/ledger.csv", params=params, headers=service.auth("cases:read")
    ) as answer:
        assert answer.status_code == 200
        assert "content-length" not in answer.headers  # a streamed body: its length is not known up front
        body = b"".join(answer.iter_bytes())
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "案卷号" and len(rows) == 121  # the 120 cases of the period, oldest filed first
    assert [r[0] for r in rows[1:]] == [f"SO{n:014d}" for n in range(120)]


def test_the_ledger_xlsx_is_sent_from_its_file_whole_with_its_length(service: Service) -> None:
    """The workbook was held in memory twice over (its BytesIO and the copy sent); it is now written
    to a temporary file and sent from it a mebibyte at a time: its length is still declared, and
    the file read back is the workbook of every case of the period (the pinned figures check its
    cells)."""
    add_cases(service, 120)
    params = {"since": "2025-06-01", "until": "2025-10-01"}
    with service.client.stream(
        "GET", "/v1/ledger.xlsx", params=params, headers=service.auth("cases:read")
    ) as answer:
        assert answer.status_code == 200
        body = b"".join(answer.iter_bytes())
    assert answer.headers["content-length"] == str(len(body))
    book = load_workbook(io.BytesIO(body), read_only=True)
    assert book.sheetnames == ["问题台账", "挂牌督办"]
    numbers = [row[0] for row in book["问题台账"].iter_rows(min_row=2, values_only=True)]
    assert numbers == [f"SO{n:014d}" for n in range(120)]


def test_the_ledger_xlsx_is_written_without_holding_its_rows_as_cells() -> None:
    """A year's .xlsx held every cell of every row before saving (1 GB at 200,000 cases): the
    workbook is now write-only: a further row costs its distinct text, not its cells."""
    when = datetime(2026, 11, 2, 8, 30)
    values = {key: f"{key} 值" for key, _ in COLUMNS} | {"first_seen_at": when, "lat": 34.7}

    def rows(count: int) -> Iterator[LedgerRow]:
        for n in range(count):
            link = f"http://so/v1/evidence/{n}"
            yield LedgerRow({**values, "number": f"SO{n:014d}", "after_photos": link}, (link,))

    def peak(count: int) -> tuple[int, bytes]:
        tracemalloc.start()
        try:
            book = io.BytesIO()
            to_xlsx(rows(count), [], book)
            return tracemalloc.get_traced_memory()[1], book.getvalue()
        finally:
            tracemalloc.stop()

    (small, _), (large, book) = peak(WIDTH_SAMPLE + 100), peak(5 * (WIDTH_SAMPLE + 100))
    per_row = (large - small) / (4 * (WIDTH_SAMPLE + 100))
    assert per_row < 3000, (small, large)  # its own text in the shared strings; 28 cells took 8 KB
    sheet = load_workbook(io.BytesIO(book))["问题台账"]
    assert sheet.max_row == 1 + 5 * (WIDTH_SAMPLE + 100)
    last = next(sheet.iter_rows(min_row=sheet.max_row))
    assert last[0].value == f"SO{5 * (WIDTH_SAMPLE + 100) - 1:014d}" and last[12].value == when
    assert last[-1].hyperlink.target == last[-1].value


def test_links_past_excels_limit_for_a_sheet_read_as_their_text() -> None:
    """Excel keeps at most 65,530 hyperlinks a sheet, and a year's ledger has more (68,295 of 87,746
    rows in the benchmark's year): the workbook linked them all, past what Excel opens. The rows
    past the limit now show their photos' addresses as text; none is left empty."""
    count = MAX_LINKS + 2
    blank = dict.fromkeys((key for key, _ in COLUMNS), None)

    def rows() -> Iterator[LedgerRow]:
        for n in range(count):
            link = f"http://so/v1/evidence/{n}"
            yield LedgerRow({**blank, "number": f"SO{n:014d}", "after_photos": link}, (link,))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # XlsxWriter warns as it drops a link past the limit, and its cell
        book = io.BytesIO()
        to_xlsx(rows(), [], book)
    with zipfile.ZipFile(book) as archive:  # openpyxl binds each link by a search of all
        sheet = ElementTree.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    main = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    photos = {c.get("r"): "".join(c.itertext()) for c in sheet.iterfind("m:sheetData/m:row/m:c", main)}
    assert [photos[f"AB{n + 2}"] for n in range(count)] == [
        f"http://so/v1/evidence/{n}" for n in range(count)
    ]
    linked = [link.get("ref") for link in sheet.iterfind("m:hyperlinks/m:hyperlink", main)]
    assert linked == [f"AB{n + 2}" for n in range(MAX_LINKS)]


def test_daily_counts_read_no_flow_log(service: Service) -> None:
    """The daily counts need each case's event and first sighting: they loaded every case of the
    30 days with its flow log (2.5 s at 200,000 cases)."""
    add_cases(service, 40)
    service.client.get("/v1/events", headers=service.auth("cases:read"))  # the key is known after
    with statements(service) as sent:
        answer = service.client.get("/v1/stats/daily", headers=service.auth("cases:read"))
    assert answer.status_code == 200
    assert sum(sum(e["counts"]) for e in answer.json()["events"]) == 30  # the cases of the 30 days
    assert not [s for s in sent if "flow_log" in s], sent


def test_the_figures_and_the_ledger_build_no_object_per_case_or_step(service: Service) -> None:
    """A year of /v1/stats took 36 s and its ledger 34 to 78 s at 200,000 cases, most of it building
    each case and flow-log step as an ORM object, and a month of the inspectors' figures 1.6 to 2.7 s:
    they read plain rows of the columns they need (tests/test_figures_pinned.py keeps every figure
    and cell what it was, tests/test_people.py the inspectors')."""
    add_cases(service, 30)
    loaded: list[object] = []

    def keep(target: object, _context: object) -> None:
        loaded.append(target)

    for kind in (Case, FlowEntry, Evidence):
        sa.event.listen(kind, "load", keep)
    try:
        headers = service.auth("cases:read")
        for path in (
            "/v1/stats?since=2025-01-01&until=2026-01-01&group_by=street",
            "/v1/stats/ranking",
            "/v1/stats/monthly-ranking?month=2025-09",
            "/v1/stats/inspectors?month=2025-09",
            "/v1/ledger.csv?since=2025-01-01&until=2026-01-01",
            "/v1/ledger.xlsx?since=2025-01-01&until=2026-01-01",
        ):
            answer = service.client.get(path, headers=headers)
            assert answer.status_code == 200, (path, answer.text)
            assert not loaded, (path, len(loaded))
            if path.startswith("/v1/ledger.csv"):  # the year's 30 cases, under the header
                assert len(answer.content.decode("utf-8-sig").splitlines()) == 31
    finally:
        for kind in (Case, FlowEntry, Evidence):
            sa.event.remove(kind, "load", keep)


def test_the_figures_stay_within_an_older_sqlites_999_variables(service: Service, db_url: str) -> None:
    """SQLite before 3.32 (RHEL 8's 3.26, which its Python links) takes at most 999 variables a
    statement: the figures read a batch of 1000 cases' steps by one `IN` and were a 500 there;
    `selectinload`, which they replaced, asks 500 at a time."""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's variable limit")
    add_cases(service, 1000)
    engine = service.client.app.state.service.sessions.kw["bind"]  # type: ignore[attr-defined]

    def older_sqlite(connection: sqlite3.Connection, _record: object) -> None:
        connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    sa.event.listen(engine, "connect", older_sqlite)
    engine.dispose()  # the connections from now on have the limit
    try:
        answer = service.client.get("/v1/stats?until=2026-12-31", headers=service.auth("cases:read"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["total"]["reports"] == 1000, answer.json()["total"]
    finally:
        sa.event.remove(engine, "connect", older_sqlite)
        engine.dispose()
