"""The problem ledger (问题台账): one row per case with its 销号 (closing) evidence, as .xlsx or .csv.

"Find one, fix one, verify one": each row says who dispatched, handled, checked and closed the case,
when, whether on time, and links the after-handling photos that closed it. The .xlsx has a second
sheet with the 挂牌督办 items. Text a spreadsheet would run as a formula (=, +, -, @ first) is
written with a leading apostrophe, so a citizen's description can never become a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from itertools import chain, islice
from typing import IO, Any, Protocol

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.orm import Session
from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from serve.cases import stats
from serve.cases.db import with_children
from serve.cases.enums import Action, EvidenceRole
from serve.cases.orm import Case, Evidence, FlowEntry, SupervisionItem
from serve.cases.spreadsheet import inert
from serve.cases.workflow import is_overdue

# (key, header): the headers are the bureau's; keys name the same columns in code and tests.
COLUMNS = (
    ("number", "案卷号"),
    ("event", "问题类别"),
    ("description", "问题描述"),
    ("cjt214", "CJ/T 214 编码"),
    ("gbt47678", "GB/T 47678.5 编码"),
    ("source", "问题来源"),
    ("street", "街道"),
    ("community", "社区"),
    ("grid_code", "单元网格"),
    ("address", "位置描述"),
    ("lat", "纬度（WGS-84）"),  # said: pasted into AMap or Baidu as their own it lies some 500 m off
    ("lon", "经度（WGS-84）"),
    ("first_seen_at", "发现时间"),
    ("department", "责任部门"),
    ("dispatched_at", "派遣时间"),
    ("deadline_at", "处置期限"),
    ("handled_at", "处置完成时间"),
    ("handled_by", "处置人"),
    ("state", "状态"),
    ("overdue", "是否超期"),
    ("reworks", "返工次数"),
    ("extensions", "延期次数"),
    ("checked_by", "核查人"),
    ("checked_at", "核查时间"),
    ("closed_by", "结案人"),
    ("closed_at", "结案时间"),
    ("closing_note", "销号说明"),
    ("after_photos", "处置后照片"),
)
SUPERVISION_COLUMNS = (
    ("id", "编号"),
    ("name", "督办对象"),
    ("kind", "类型"),
    ("grids", "单元网格"),
    ("department", "责任单位"),
    ("reason", "督办事由"),
    ("opened_by", "挂牌人"),
    ("opened_at", "挂牌时间"),
    ("deadline_at", "整改期限"),
    ("state", "状态"),
    ("closed_by", "核查销号人"),
    ("closed_at", "销号时间"),
    ("check_note", "核查情况"),
)
STATE_ZH = {
    "reported": "待核实",
    "verified": "已核实",
    "not_filed": "不予立案",
    "filed": "已立案",
    "dispatched": "已派遣",
    "handling": "处理中",
    "handled": "待核查",
    "check_passed": "核查通过",
    "closed": "已结案",
    "suspended": "挂账",
    "cancelled": "作废",
    "force_closed": "强制结案",
    "open": "督办中",
}


@dataclass(frozen=True)
class LedgerRow:
    values: dict[str, Any]  # key of COLUMNS -> text, number or local datetime
    photo_links: tuple[str, ...]  # absolute URLs of the after-handling photos


class Step(stats.Step, Protocol):
    """What the ledger reads of a flow-log step: a plain row of STEP_COLUMNS."""

    @property
    def operator(self) -> str: ...
    @property
    def note(self) -> str | None: ...


# the columns the ledger reads, each read as plain rows (an ORM object per row made a year's ledger
# take over a minute): a case's id first, a step's and a photo's case first
CASE_COLUMNS = (Case.id, Case.number, Case.event, Case.description, Case.cjt214, Case.gbt47678, Case.source,
                Case.street, Case.community, Case.grid_code, Case.address, Case.lat, Case.lon,
                Case.first_seen_at, Case.department, Case.deadline_at, Case.state)  # fmt: skip
STEP_COLUMNS = (FlowEntry.case_id, FlowEntry.action, FlowEntry.at, FlowEntry.operator, FlowEntry.note,
                FlowEntry.overdue)  # fmt: skip


def ledger_cases(
    session: Session, *where: ColumnElement[bool]
) -> Iterator[tuple[Row[Any], tuple[list[Row[Any]], ...]]]:
    """The cases `where` picks, in the order they came in (by id), each with its flow steps and its
    after-handling photos (evidence ids), read a few hundred cases at a time as the ledger is written."""
    cases = select(*CASE_COLUMNS).where(*where).order_by(Case.id)
    steps = select(*STEP_COLUMNS).order_by(FlowEntry.id)
    after = (
        select(Evidence.case_id, Evidence.id).where(Evidence.role == EvidenceRole.AFTER).order_by(Evidence.id)
    )
    return with_children(session, cases, steps, after)


def _last(flow: Sequence[Step], *actions: Action) -> Step | None:
    return next((e for e in reversed(flow) if e.action in actions), None)


def ledger_rows(
    cases: Iterable[tuple[Row[Any], tuple[list[Row[Any]], ...]]],
    *,
    event_names: dict[str, str],
    tz: tzinfo,
    base_url: str,
    as_of: datetime,
) -> Iterator[LedgerRow]:
    """Rows of the ledger from `ledger_cases`, one at a time as the cases are read: a year of a
    city's cases is never held whole for the .csv."""

    def local(moment: datetime | None) -> datetime | None:
        return moment.astimezone(tz).replace(tzinfo=None) if moment else None

    for case, (flow, photos) in cases:
        dispatched = _last(flow, Action.DISPATCH)
        handled = _last(flow, Action.HANDLE)
        checked = _last(flow, Action.CHECK_PASS)
        closed = _last(flow, Action.CLOSE, Action.FORCE_CLOSE)
        # judged when closed (a suspended case's clock had stopped); open: only while its clock runs
        overdue = closed.overdue if closed is not None else is_overdue(case, as_of)
        links = tuple(f"{base_url}/v1/evidence/{photo.id}" for photo in photos)
        values = {
            "number": case.number,
            "event": event_names.get(case.event, case.event),
            "description": case.description,
            "cjt214": case.cjt214,
            "gbt47678": case.gbt47678,
            "source": str(case.source),
            "street": case.street,
            "community": case.community,
            "grid_code": case.grid_code,
            "address": case.address,
            "lat": round(case.lat, 7),
            "lon": round(case.lon, 7),
            "first_seen_at": local(case.first_seen_at),
            "department": case.department,
            "dispatched_at": local(dispatched.at if dispatched else None),
            "deadline_at": local(case.deadline_at),
            "handled_at": local(handled.at if handled else None),
            "handled_by": handled.operator if handled else None,
            "state": STATE_ZH.get(case.state, case.state),
            "overdue": "是" if overdue else "否",
            "reworks": sum(e.action == Action.CHECK_FAIL for e in flow),
            "extensions": sum(e.action == Action.EXTEND for e in flow),
            "checked_by": checked.operator if checked else None,
            "checked_at": local(checked.at if checked else None),
            "closed_by": closed.operator if closed else None,
            "closed_at": local(closed.at if closed else None),
            "closing_note": closed.note if closed else None,
            "after_photos": "\n".join(links) or None,
        }
        yield LedgerRow(values, links)


def supervision_rows(items: Iterable[SupervisionItem], tz: tzinfo) -> list[dict[str, Any]]:
    return [
        {
            "id": item.id,
            "name": item.name,
            "kind": "最差乱点" if item.kind == "spot" else "最差路段",
            "grids": ", ".join(item.grids),
            "department": item.department,
            "reason": item.reason,
            "opened_by": item.opened_by,
            "opened_at": item.opened_at.astimezone(tz).replace(tzinfo=None),
            "deadline_at": item.deadline_at.astimezone(tz).replace(tzinfo=None),
            "state": "已销号" if item.state == "closed" else STATE_ZH["open"],
            "closed_by": item.closed_by,
            "closed_at": item.closed_at.astimezone(tz).replace(tzinfo=None) if item.closed_at else None,
            "check_note": item.check_note,
        }
        for item in items
    ]


def csv_chunks(rows: Iterable[LedgerRow], rows_per_chunk: int = 500) -> Iterator[bytes]:
    """The .csv a few hundred rows at a time, for a streamed response: UTF-8 with a byte order
    mark, so that Excel opens it as UTF-8 and the Chinese reads right."""
    out = io.StringIO()
    writer = csv.writer(out)
    out.write("\ufeff")
    writer.writerow([header for _, header in COLUMNS])
    for count, row in enumerate(rows, start=1):
        cells = [inert(row.values[key]) for key, _ in COLUMNS]
        writer.writerow(
            ["" if c is None else c.isoformat(sep=" ") if isinstance(c, datetime) else c for c in cells]
        )
        if count % rows_per_chunk == 0:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode("utf-8")


DATE_FORMAT = "yyyy-mm-dd hh:mm"
WIDTH_SAMPLE = 500  # rows a column's width is judged by: the sheet is written before the rest is read
PIXELS_PER_CHARACTER = 7  # a width counts digits of the default font (Calibri 11), 7 pixels each
MAX_LINKS = 65_530  # hyperlinks Excel keeps a sheet ("Excel specifications and limits")


@dataclass(frozen=True)
class _Styles:
    header: Format
    date: Format
    link: Format


def _sheet(
    book: Workbook,
    styles: _Styles,
    title: str,
    columns: tuple[tuple[str, str], ...],
    rows: Iterable[dict[str, Any]],
    links: dict[int, str] | None = None,
) -> None:
    """A sheet written row by row to its file as the rows come (a year's ledger held as cells took
    a gigabyte), each cell as its type: text (made `inert`), a number, a date, or nothing.
    `links`: column index (from 0) -> key of the value's hyperlink."""
    sheet: Worksheet = book.add_worksheet(title)
    pending = iter(rows)
    sample = list(islice(pending, WIDTH_SAMPLE))
    for index, (key, header) in enumerate(columns):
        longest = max([len(header) * 2, *(min(len(str(v[key] or "")), 60) for v in sample)])
        sheet.set_column_pixels(index, index, max(10, longest + 2) * PIXELS_PER_CHARACTER)
        sheet.write_string(0, index, header, styles.header)
    sheet.freeze_panes(1, 1)
    row, linked = 0, 0
    for row, values in enumerate(chain(sample, pending), start=1):
        for col, (key, _) in enumerate(columns):
            value = values[key]
            if value is None or value == "":  # a blank cell (an empty text would read back as "")
                continue
            if isinstance(value, str):
                text = inert(value)
                target = values[links[col]] if links and col in links else None
                if target and linked < MAX_LINKS and not sheet.write_url(row, col, target, styles.link, text):
                    linked += 1
                else:  # past Excel's limit of links a sheet (or a link too long for it): its text alone
                    sheet.write_string(row, col, text)
            elif isinstance(value, datetime):
                sheet.write_datetime(row, col, value, styles.date)
            else:
                sheet.write_number(row, col, value)
    sheet.autofilter(0, 0, row, len(columns) - 1)


def to_xlsx(rows: Iterable[LedgerRow], items: list[dict[str, Any]], out: IO[bytes]) -> None:
    """Sheet 问题台账 (the after-photo cell links the first photo) and sheet 挂牌督办, written to
    `out` (a temporary file: a year's workbook, 17 MB, held in memory twice over was most of the
    request's peak). XlsxWriter in its constant-memory mode writes each row to a temporary file once
    the next one starts: a year's ledger took 30 s of CPU through openpyxl, which builds an object
    per cell (docs/reliability.md)."""
    book = Workbook(out, {"constant_memory": True})
    styles = _Styles(
        header=book.add_format({"bold": True, "pattern": 1, "bg_color": "#DDE6DA"}),
        date=book.add_format({"num_format": DATE_FORMAT}),
        link=book.add_format({"font_color": "#1F5FA8", "underline": 1}),
    )
    photo_column = [key for key, _ in COLUMNS].index("after_photos")
    cases = ({**r.values, "first_photo": r.photo_links[0] if r.photo_links else None} for r in rows)
    _sheet(book, styles, "问题台账", COLUMNS, cases, {photo_column: "first_photo"})
    _sheet(book, styles, "挂牌督办", SUPERVISION_COLUMNS, items)
    book.close()
