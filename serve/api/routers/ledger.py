"""The problem ledger (问题台账) as .xlsx or .csv for a period, a street, a department (cases:read).

A department handler's ledger holds their department's cases only, as every list they read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from serve.api.deps import DbSession, Now, PublicBase, Reader, ServiceDep
from serve.cases.ledger import LedgerRow, csv_chunks, ledger_cases, ledger_rows, supervision_rows, to_xlsx
from serve.cases.orm import Case, SupervisionItem
from serve.cases.people import DEPARTMENT_ROLES
from serve.cases.stats import local_day_bounds
from serve.cases.supervision import month_bounds
from serve.cases.times import check_day_range

router = APIRouter(tags=["ledger"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


Since = Annotated[date | None, Query(description="first day (bureau calendar); default the month's first")]
Until = Annotated[date | None, Query(description="day after the last one; default the month's end")]
Street = Annotated[str | None, Query(max_length=64, description="only this street's cases")]
Department = Annotated[str | None, Query(max_length=64, description="only cases dispatched to it")]


@dataclass(frozen=True)
class Ledger:
    rows: Iterator[LedgerRow]  # read from the database as they are written out
    filename: str  # without the extension


def ledger_of(
    base: PublicBase,
    principal: Reader,
    session: DbSession,
    service: ServiceDep,
    now: Now,
    since: Since = None,
    until: Until = None,
    street: Street = None,
    department: Department = None,
) -> Ledger:
    """The ledger's rows for the filters (both formats share it)."""
    calendar = service.domain.rules.calendar
    first, after = month_bounds(f"{now.astimezone(calendar.timezone):%Y-%m}")
    start, end = since or first, until or (since + timedelta(days=31) if since else after)
    check_day_range(start, end)
    lower, upper = local_day_bounds(start, end, calendar)
    where = [Case.first_seen_at >= lower, Case.first_seen_at < upper]
    if street:
        where.append(Case.street == street)
    if department:
        where.append(Case.department == department)
    if principal.role in DEPARTMENT_ROLES:
        where.append(Case.department == principal.department)
    names = {key: event.name_zh for key, event in service.domain.rules.taxonomy.events.items()}
    rows = ledger_rows(
        ledger_cases(session, *where),
        event_names=names,
        tz=calendar.timezone,
        base_url=base.rstrip("/"),
        as_of=now,
    )
    return Ledger(rows, f"ledger-{start}-{end - timedelta(days=1)}")


LedgerDep = Annotated[Ledger, Depends(ledger_of)]


@router.get(
    "/v1/ledger.xlsx",
    summary="问题台账 as .xlsx: cases with their closing evidence, and the 挂牌督办 items",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}, "description": "the workbook"}},
)
def ledger_xlsx(ledger: LedgerDep, session: DbSession, service: ServiceDep) -> Response:
    items = supervision_rows(
        session.scalars(select(SupervisionItem).order_by(SupervisionItem.id)),
        service.domain.rules.calendar.timezone,
    )
    with ExitStack() as failed:  # closed (and gone: it has no name) if writing fails, else by chunks_of
        workbook = failed.enter_context(tempfile.TemporaryFile(prefix="ledger-", suffix=".xlsx"))
        to_xlsx(ledger.rows, items, workbook)
        size = workbook.seek(0, os.SEEK_END)
        workbook.seek(0)
        failed.pop_all()
    return StreamingResponse(
        chunks_of(workbook),
        media_type=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="{ledger.filename}.xlsx"',
            "Content-Length": str(size),
        },
    )


def chunks_of(file: BinaryIO, size: int = 2**20) -> Iterator[bytes]:
    """A file a mebibyte at a time, closed after its last one or when the client goes."""
    with file:
        while chunk := file.read(size):
            yield chunk


@router.get(
    "/v1/ledger.csv",
    summary="问题台账 as .csv (UTF-8 with BOM): cases with their closing evidence",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "the ledger"}},
)
def ledger_csv(ledger: LedgerDep) -> Response:
    """Streamed as the cases are read: the request's session stays open until the last row."""
    return StreamingResponse(
        csv_chunks(ledger.rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{ledger.filename}.csv"'},
    )
