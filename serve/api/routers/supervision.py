"""Supervision (督查督办): 挂牌督办 items, the monthly district ranking, inspector metrics.

Formulas in serve/cases/supervision.py and docs/people.md. Reading needs cases:read (every
role); opening, assigning and closing items need cases:write and, for people, the roles named there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from serve.api.deps import DIGITS, MAX_ID, DbSession, Now, Reader, ServiceDep, Writer
from serve.api.schemas import (
    DistrictRankingOut,
    InspectorsOut,
    SupervisionCheck,
    SupervisionIn,
    SupervisionOut,
    SupervisionPatch,
)
from serve.cases.enums import SupervisionState
from serve.cases.orm import SupervisionItem
from serve.cases.stats import facts_between, local_day_bounds
from serve.cases.supervision import (
    assign_item,
    close_item,
    district_ranking,
    find_item,
    inspector_metrics,
    month_bounds,
    open_counts,
    open_item,
)

router = APIRouter(tags=["supervision"])
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="supervision item id"), DIGITS]
Month = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default this month")]


ITEM_FIELDS = tuple(name for name in SupervisionOut.model_fields if name not in ("open_cases", "overdue"))


def item_out(session: Session, item: SupervisionItem, now: datetime) -> SupervisionOut:
    """The item with what is true now: open cases left in its grids, and whether it is overdue."""
    return items_out(session, [item], now)[0]


def items_out(session: Session, items: list[SupervisionItem], now: datetime) -> list[SupervisionOut]:
    """`item_out` of each item, with the open cases of all their grids counted in one query."""
    open_items = [item for item in items if item.state is SupervisionState.OPEN]
    counts = open_counts(session, (code for item in open_items for code in item.grids)) if open_items else {}
    return [
        SupervisionOut.model_validate(
            {
                **{name: getattr(item, name) for name in ITEM_FIELDS},
                "open_cases": sum(counts.get(code, 0) for code in set(item.grids))
                if item.state is SupervisionState.OPEN
                else 0,
                "overdue": item.state is SupervisionState.OPEN and item.deadline_at < now,
            }
        )
        for item in items
    ]


@router.get("/v1/supervision", response_model=list[SupervisionOut], summary="挂牌督办 items, newest first")
def list_supervision_items(
    _: Reader,
    session: DbSession,
    now: Now,
    state: Annotated[SupervisionState | None, Query(description="open or closed; default both")] = None,
) -> list[SupervisionOut]:
    query = select(SupervisionItem).order_by(SupervisionItem.id.desc())
    if state is not None:
        query = query.where(SupervisionItem.state == state)
    return items_out(session, list(session.scalars(query)), now)


@router.post(
    "/v1/supervision",
    response_model=SupervisionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Flag a worst spot (one grid) or road section (several) with a department and a deadline",
)
def create_supervision_item(
    principal: Writer, body: SupervisionIn, session: DbSession, service: ServiceDep, now: Now
) -> SupervisionOut:
    item = open_item(
        session,
        principal,
        grids=body.grids,
        name=body.name,
        department=body.department,
        deadline_at=body.deadline_at,
        reason=body.reason,
        layout=service.domain.rules.grids,
        departments=tuple(service.domain.routing.departments),
        now=now,
    )
    session.commit()
    return item_out(session, item, now)


@router.patch(
    "/v1/supervision/{item_id}", response_model=SupervisionOut, summary="Assign: department, deadline"
)
def assign_supervision_item(
    item_id: ItemId,
    principal: Writer,
    body: SupervisionPatch,
    session: DbSession,
    service: ServiceDep,
    now: Now,
) -> SupervisionOut:
    item = find_item(session, item_id)
    assign_item(
        item,
        principal,
        department=body.department,
        deadline_at=body.deadline_at,
        departments=tuple(service.domain.routing.departments),
        now=now,
    )
    session.commit()
    return item_out(session, item, now)


@router.post(
    "/v1/supervision/{item_id}/close",
    response_model=SupervisionOut,
    summary="Close after a check (销号); 409 naming the cases while any is open in its grids",
    responses={409: {"description": "already closed, or open cases remain"}},
)
def close_supervision_item(
    item_id: ItemId, principal: Writer, body: SupervisionCheck, session: DbSession, now: Now
) -> SupervisionOut:
    item = find_item(session, item_id)
    close_item(session, item, principal, note=body.note, now=now)
    session.commit()
    return item_out(session, item, now)


@router.get(
    "/v1/stats/monthly-ranking",
    response_model=DistrictRankingOut,
    summary="Monthly ranking of districts, worst first (problems per km²)",
)
def monthly_ranking(
    _: Reader, session: DbSession, service: ServiceDep, now: Now, month: Month = None
) -> DistrictRankingOut:
    domain = service.domain
    calendar = domain.rules.calendar
    label = month or f"{now.astimezone(calendar.timezone):%Y-%m}"
    since, until = local_day_bounds(*month_bounds(label), calendar)
    facts = list(facts_between(session, since, until, calendar, domain.unit_of))
    return DistrictRankingOut.model_validate(
        {
            "month": label,
            "since": since,
            "until": until,
            "districts": district_ranking(facts, domain.rules.grids, domain.score_weights),
        }
    )


@router.get(
    "/v1/stats/inspectors",
    response_model=InspectorsOut,
    summary="Inspectors' valid report rate, miss rate and on-time check rate over a month",
)
def inspectors(
    _: Reader, session: DbSession, service: ServiceDep, now: Now, month: Month = None
) -> InspectorsOut:
    calendar = service.domain.rules.calendar
    label = month or f"{now.astimezone(calendar.timezone):%Y-%m}"
    since, until = local_day_bounds(*month_bounds(label), calendar)
    rows = inspector_metrics(session, since, until)
    return InspectorsOut.model_validate({"since": since, "until": until, "inspectors": rows})
