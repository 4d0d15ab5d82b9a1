"""Open311 GeoReport v2 (JSON): services, requests in and out. Keys go in `api_key` or a header."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from serve.api.deps import DbSession, Now, Open311Reader, Open311Reporter, ServiceDep
from serve.api.idempotency import REPLAY_HEADER, request_hash, run_once
from serve.api.open311 import MAX_RESULTS, as_request, check_range, citizen_finding, event_of_code, services
from serve.api.schemas import Open311Created, Open311Request, Open311Service
from serve.cases.errors import InvalidInput, NotFound
from serve.cases.findings import record_finding
from serve.cases.intake import in_jurisdiction
from serve.cases.orm import Case
from serve.cases.workflow import TERMINAL_STATES
from vision.core.imageio import Position

router = APIRouter(prefix="/open311/v2", tags=["open311"])


@router.get("/services.json", response_model=list[Open311Service], summary="Services: one per event class")
def list_services(
    _: Open311Reader,
    service: ServiceDep,
) -> list[Open311Service]:
    return services(service.domain.rules.taxonomy)


@router.post(
    "/requests.json",
    response_model=list[Open311Created],
    status_code=status.HTTP_201_CREATED,
    summary="A citizen's request: opens a case, or joins the open case of the same problem",
)
def post_request(
    principal: Open311Reporter,
    service: ServiceDep,
    now: Now,
    service_code: Annotated[str, Form(description="from services.json")],
    lat: Annotated[float | None, Form(ge=-90, le=90, description="WGS-84 latitude (required here)")] = None,
    long: Annotated[
        float | None, Form(ge=-180, le=180, description="WGS-84 longitude (required here)")
    ] = None,
    address_string: Annotated[
        str | None, Form(max_length=500, description="address as the citizen wrote it")
    ] = None,
    description: Annotated[str | None, Form(max_length=4000, description="what the citizen saw")] = None,
    media_url: Annotated[str | None, Form(max_length=2000, description="URL of the citizen's photo")] = None,
    api_key: Annotated[str | None, Form(description="GeoReport v2 api_key (or a header)")] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=128, description="retries replay the answer")
    ] = None,
) -> Any:
    del api_key  # read by the Open311Reporter dependency
    taxonomy = service.domain.rules.taxonomy
    if lat is not None and long is not None:
        in_jurisdiction(Position(lat, long), service.domain.rules)
    finding = citizen_finding(
        event=event_of_code(taxonomy, service_code),
        lat=lat,
        lon=long,
        address=address_string,
        description=description,
        media_url=media_url,
        reporter=principal.name,
        now=now,
    )

    def work(session: Session) -> dict[str, Any]:
        update = record_finding(session, finding, service.domain.rules)
        notice = "new case" if update.created else "joined the open case of the same problem"
        created = Open311Created(
            service_request_id=update.case.number, service_notice=notice, account_id=None
        )
        return {"items": [created.model_dump(mode="json")]}

    body, replayed = run_once(
        service.sessions,
        work,
        principal=principal.key_id,
        endpoint="open311-requests",
        key=idempotency_key,
        fingerprint=request_hash(finding.photo_sha256),
        now=now,
        status_code=201,
    )
    return JSONResponse(body["items"], status_code=201, headers={REPLAY_HEADER: "true"} if replayed else None)


@router.get(
    "/requests.json", response_model=list[Open311Request], summary="Requests by id, service, dates, status"
)
def get_requests(
    _: Open311Reader,
    request: Request,
    session: DbSession,
    service: ServiceDep,
    now: Now,
    service_request_id: Annotated[
        str | None, Query(description="comma-separated ids; other filters are then ignored")
    ] = None,
    service_code: Annotated[str | None, Query(description="comma-separated service codes")] = None,
    start_date: Annotated[AwareDatetime | None, Query(description="requested at or after (ISO 8601)")] = None,
    end_date: Annotated[
        AwareDatetime | None, Query(description="requested before; at most 90 days after start")
    ] = None,
    status_: Annotated[
        str | None, Query(alias="status", description="open, closed, or both comma-separated")
    ] = None,
) -> list[Open311Request]:
    query = (
        select(Case).options(selectinload(Case.flow), selectinload(Case.evidence)).order_by(Case.id.desc())
    )
    if service_request_id:
        query = query.where(Case.number.in_([i.strip() for i in service_request_id.split(",") if i.strip()]))
    else:
        start, end = check_range(start_date, end_date, now)
        query = query.where(Case.first_seen_at >= start, Case.first_seen_at <= end)
        if service_code:
            query = query.where(Case.gbt47678.in_([c.strip() for c in service_code.split(",")]))
        if status_:
            wanted = {s.strip() for s in status_.split(",")}
            if not wanted <= {"open", "closed"}:
                raise InvalidInput("status", "open, closed, or both")
            if wanted == {"open"}:
                query = query.where(Case.state.not_in([s.value for s in TERMINAL_STATES]))
            elif wanted == {"closed"}:
                query = query.where(Case.state.in_([s.value for s in TERMINAL_STATES]))
    cases = session.scalars(query.limit(MAX_RESULTS))
    tz = service.domain.rules.calendar.timezone
    return [as_request(c, service.domain.rules.taxonomy, tz, str(request.base_url)) for c in cases]


@router.get(
    "/requests/{service_request_id}.json",
    response_model=list[Open311Request],
    summary="One request (a list of one)",
)
def get_request(
    service_request_id: Annotated[str, Path(description="case number (案卷号)")],
    _: Open311Reader,
    request: Request,
    session: DbSession,
    service: ServiceDep,
) -> list[Open311Request]:
    case = session.scalars(
        select(Case)
        .where(Case.number == service_request_id)
        .options(selectinload(Case.flow), selectinload(Case.evidence))
    ).one_or_none()
    if case is None:
        raise NotFound("service request", service_request_id)
    tz = service.domain.rules.calendar.timezone
    return [as_request(case, service.domain.rules.taxonomy, tz, str(request.base_url))]
