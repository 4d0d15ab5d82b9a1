"""Performance metrics, the 10-day street ranking and the worst spots (scope cases:read)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from serve.api.deps import DbSession, Now, Reader, ServiceDep
from serve.api.schemas import DailyOut, Day, Instant, RankingOut, StatsOut, WorstSpotsOut
from serve.cases.errors import InvalidInput
from serve.cases.stats import (
    facts_between,
    grouped,
    layout_area,
    local_day_bounds,
    ranking,
    rates,
    reported_between,
    reports_per_day,
    ten_day_period,
    worst_spots,
)
from serve.cases.times import check_day_range, instant, local_iso

router = APIRouter(prefix="/v1/stats", tags=["stats"])


@router.get("", response_model=StatsOut, summary="Filing, disposal, closing and rework rates of a period")
def get_stats(
    _: Reader,
    session: DbSession,
    service: ServiceDep,
    since: Annotated[
        Instant | Day | None,
        Query(description="cases first reported at or after (ISO 8601; a day: its start, bureau time)"),
    ] = None,
    until: Annotated[
        Instant | Day | None,
        Query(description="cases first reported before (ISO 8601; a day: its start, bureau time)"),
    ] = None,
    group_by: Annotated[
        Literal["grid", "street", "department", "event"] | None, Query(description="one row per group")
    ] = None,
) -> StatsOut:
    domain = service.domain
    local_tz = domain.rules.calendar.timezone
    lower, upper = instant(since, local_tz), instant(until, local_tz)
    if lower is not None and upper is not None and upper < lower:  # no period: not a report of zeros
        period = f"{local_iso(lower, local_tz)} to {local_iso(upper, local_tz)}"
        raise InvalidInput("since/until", f"{period}: since before until")
    facts = list(facts_between(session, lower, upper, domain.rules.calendar, domain.unit_of))
    groups = grouped(facts, group_by, domain.rules.grids, domain.score_weights) if group_by else []
    return StatsOut.model_validate(
        {
            "since": lower,
            "until": upper,
            "group_by": group_by,
            "total": rates(facts, area_km2=layout_area(domain.rules.grids), weights=domain.score_weights),
            "groups": groups,
        }
    )


@router.get("/ranking", response_model=RankingOut, summary="10-day (旬) ranking of streets, worst first")
def street_ranking(
    _: Reader,
    session: DbSession,
    service: ServiceDep,
    now: Now,
    day: Annotated[
        Day | None, Query(description="any day of the 旬 (bureau calendar); default today")
    ] = None,
) -> RankingOut:
    domain = service.domain
    calendar = domain.rules.calendar
    start, end, label = ten_day_period(day or now.astimezone(calendar.timezone).date())
    since, until = local_day_bounds(start, end, calendar)
    facts = list(facts_between(session, since, until, calendar, domain.unit_of))
    return RankingOut.model_validate(
        {
            "period": label,
            "since": since,
            "until": until,
            "streets": ranking(facts, domain.rules.grids, domain.score_weights),
        }
    )


@router.get(
    "/worst-spots",
    response_model=WorstSpotsOut,
    summary="Grids with the most open cases per km² now",
    operation_id="worst_spots",
)
def worst(
    _: Reader,
    session: DbSession,
    service: ServiceDep,
    now: Now,
    limit: Annotated[int, Query(ge=1, le=200, description="how many grids")] = 10,
) -> WorstSpotsOut:
    return WorstSpotsOut.model_validate(
        {
            "as_of": now,
            "spots": worst_spots(session, service.domain.rules.grids, limit, service.domain.routing),
        }
    )


@router.get("/daily", response_model=DailyOut, summary="Cases first reported per day and event class")
def daily_counts(
    _: Reader,
    session: DbSession,
    service: ServiceDep,
    now: Now,
    since: Annotated[
        Day | None, Query(description="first day (bureau calendar); default 30 days back")
    ] = None,
    until: Annotated[Day | None, Query(description="day after the last one; default tomorrow")] = None,
) -> DailyOut:
    calendar = service.domain.rules.calendar
    end = until or now.astimezone(calendar.timezone).date() + timedelta(days=1)
    start = since or end - timedelta(days=30)
    check_day_range(start, end)
    lower, upper = local_day_bounds(start, end, calendar)
    counts = reports_per_day(reported_between(session, lower, upper), calendar, start, end)
    return DailyOut.model_validate(
        {
            "since": start,
            "until": end,
            "days": [start + timedelta(days=i) for i in range((end - start).days)],
            "events": [{"event": event, "counts": series} for event, series in counts.items()],
        }
    )
