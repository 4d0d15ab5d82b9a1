"""Cases: list with filters and cursor paging, GeoJSON, one case with evidence and flow log, and
the workflow transitions, guarded by ETag / If-Match."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select
from sqlalchemy.orm import Session, object_session, selectinload

from serve.api.deps import DIGITS, CaseId, DbSession, IfMatch, Now, Reader, ServiceDep, Writer
from serve.api.schemas import (
    MAX_ID,
    CaseDetail,
    CaseFeatures,
    CaseMapQuery,
    CasePage,
    CaseQuery,
    CaseSummary,
    DecisionIn,
    DepartmentsOut,
    EventOut,
    EvidenceOut,
    ExtensionIn,
    ExtensionOut,
    FlowOut,
    TransitionIn,
)
from serve.cases.auth import Principal, check_name
from serve.cases.closing import failed_checks, override_note, standing_after_photo
from serve.cases.coords import crs_member, from_wgs84
from serve.cases.domain import Domain
from serve.cases.enums import EvidenceStep, ExtensionState
from serve.cases.errors import (
    AfterPhotoFailed,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PreconditionRequired,
    StaleVersion,
)
from serve.cases.navigation import navigation_links
from serve.cases.notify import enqueue_dispatched
from serve.cases.orm import Case, Evidence, ExtensionRequest
from serve.cases.people import (
    DEPARTMENT_ROLES,
    check_action,
    check_decider,
    check_own_report,
    may_act,
    may_file,
    request_extension,
    sees,
    withdraw_extensions,
)
from serve.cases.times import instant, local_iso
from serve.cases.workflow import (
    CLOCK_RUNNING_STATES,
    Action,
    Command,
    allowed_actions,
    is_open,
    is_overdue,
)
from vision.core.boxes import boxes_json, parse_boxes

router = APIRouter(tags=["cases"])
CLOCK_SKEW = timedelta(minutes=5)  # an `at` this far ahead of the server clock is still accepted
SUMMARY_FIELDS = tuple(name for name in CaseSummary.model_fields if name != "overdue")
EVIDENCE_FIELDS = tuple(name for name in EvidenceOut.model_fields if name != "url")
STALE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "action not allowed in the case's state; the body lists the allowed ones"},
    412: {"description": "If-Match does not match the case's current ETag"},
    428: {"description": "If-Match header missing"},
}
ETAG = {
    "ETag": {
        "description": "the case's version, quoted: send it back as If-Match",
        "schema": {"type": "string"},
    }
}


def summary(case: Case, as_of: datetime) -> CaseSummary:
    return CaseSummary.model_validate(
        {**{name: getattr(case, name) for name in SUMMARY_FIELDS}, "overdue": is_overdue(case, as_of)}
    )


def evidence_out(evidence: Evidence) -> EvidenceOut:
    fields = {name: getattr(evidence, name) for name in EVIDENCE_FIELDS}
    boxes = parse_boxes(evidence.boxes, f"evidence {evidence.id}").boxes
    return EvidenceOut.model_validate(
        {**fields, "boxes": boxes_json(boxes), "url": f"/v1/evidence/{evidence.id}"}
    )


def detail(case: Case, as_of: datetime, domain: Domain, principal: Principal, session: Session) -> CaseDetail:
    """The case as `principal` sees it: the actions offered are those their role may take now."""
    extensions = session.scalars(
        select(ExtensionRequest).where(ExtensionRequest.case_id == case.id).order_by(ExtensionRequest.id)
    )
    return CaseDetail.model_validate(
        {
            **summary(case, as_of).model_dump(),
            "description": case.description,
            "navigation": navigation_links(
                case.lat, case.lon, f"{case.number} {case.description}", case.address or case.description
            ),
            "evidence": [evidence_out(e) for e in case.evidence],
            "flow": [FlowOut.model_validate(f) for f in case.flow],
            "allowed_actions": [a.value for a in allowed_actions(case.state) if may_act(principal, a, case)],
            "evidence_actions": [s.value for s in EvidenceStep]
            if is_open(case.state) and principal.allows("cases:write") and may_file(principal)
            else [],
            "suggested_department": domain.routing.department_for(case.event, case.grid_code, case.street),
            "extensions": [ExtensionOut.model_validate(e) for e in extensions],
        }
    )


def etag(case: Case) -> str:
    return f'"{case.version}"'


def load_case(session: Session, case_id: int, principal: Principal) -> Case:
    """The case, if `principal` may see it: another department's case does not exist for a handler."""
    case = session.scalars(
        select(Case).where(Case.id == case_id).options(selectinload(Case.evidence), selectinload(Case.flow))
    ).one_or_none()
    if case is None or not sees(principal, case):
        raise NotFound("case", case_id)
    return case


def _cursor_id(cursor: str) -> int:
    try:
        case_id = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor", "not a cursor returned by this API") from None
    if not 0 < case_id <= MAX_ID:
        raise InvalidInput("cursor", "not a cursor returned by this API")
    return case_id


def _cursor(case_id: int) -> str:
    return base64.urlsafe_b64encode(str(case_id).encode()).decode().rstrip("=")


def known_events(q: CaseQuery, domain: Domain) -> None:
    """Refuse an event `q` names that the taxonomy has not: a typo answered with no cases would
    read as a street without that problem (states are checked by their type)."""
    unknown = [key for key in q.event if key not in domain.rules.taxonomy.events]
    if unknown:
        known = ", ".join(domain.rules.taxonomy.events)
        raise InvalidInput("event", f"no event {unknown[0][:64]!r} (GET /v1/events: {known})")


def grid_codes_under(prefix: str) -> list[ColumnElement[bool]]:
    """Grid codes that start with `prefix` (digits) as a range of codes, which ix_cases_grid_code
    serves: a LIKE serves no index on SQLite (case-insensitive) nor on PostgreSQL outside the C
    locale, so a street's cases were counted by reading every case."""
    head = prefix.rstrip("9")  # 4101030019 -> the codes below 410103002
    if not head:
        return [Case.grid_code >= prefix]
    return [Case.grid_code >= prefix, Case.grid_code < head[:-1] + str(int(head[-1]) + 1)]


def filtered(q: CaseQuery, as_of: datetime, principal: Principal, local_tz: tzinfo) -> Select[Any]:
    """The case query of the filters, newest first (id descending: stable for cursor paging); a
    department handler's queries hold only their department's cases."""
    query = select(Case).order_by(Case.id.desc())
    if principal.role in DEPARTMENT_ROLES:
        query = query.where(Case.department == principal.department)
    since, until = instant(q.since, local_tz), instant(q.until, local_tz)
    if q.state:
        query = query.where(Case.state.in_(q.state))
    if q.event:
        query = query.where(Case.event.in_(q.event))
    if q.grid:
        query = query.where(*grid_codes_under(q.grid))
    if q.street:
        query = query.where(Case.street == q.street)
    if q.department:
        query = query.where(Case.department == q.department)
    if since:
        query = query.where(Case.first_seen_at >= since)
    if until:
        query = query.where(Case.first_seen_at < until)
    if q.overdue is not None:
        late = and_(
            Case.state.in_([s.value for s in CLOCK_RUNNING_STATES]),
            Case.deadline_at.is_not(None),
            Case.deadline_at < as_of,
        )
        query = query.where(late if q.overdue else or_(not_(late), Case.deadline_at.is_(None)))
    if q.cursor:
        query = query.where(Case.id < _cursor_id(q.cursor))
    return query


@router.get("/v1/cases", response_model=CasePage, summary="Cases, filtered, newest first")
def list_cases(
    principal: Reader,
    q: Annotated[CaseQuery, Query()],
    session: DbSession,
    service: ServiceDep,
    now: Now,
) -> CasePage:
    as_of = q.as_of or now
    local_tz = service.domain.rules.calendar.timezone
    known_events(q, service.domain)
    rows = list(session.scalars(filtered(q, as_of, principal, local_tz).limit(q.limit + 1)))
    page = rows[: q.limit]
    unpaged = filtered(q.model_copy(update={"cursor": None}), as_of, principal, local_tz)
    matching = unpaged.order_by(None).subquery()
    counts = session.execute(select(matching.c.state, func.count()).group_by(matching.c.state)).all()
    by_state = {str(state): int(count) for state, count in counts}
    return CasePage(
        items=[summary(c, as_of) for c in page],
        next_cursor=_cursor(page[-1].id) if len(rows) > q.limit else None,
        total=sum(by_state.values()),
        by_state=by_state,
    )


@router.get(
    "/v1/cases.geojson",
    summary="Cases as a GeoJSON FeatureCollection of points (same filters)",
    response_model=None,  # the dict is sent as built; `responses` gives clients its schema
    responses={200: {"model": CaseFeatures}},
)
def cases_geojson(
    principal: Reader,
    q: Annotated[CaseMapQuery, Query()],
    session: DbSession,
    service: ServiceDep,
    now: Now,
) -> dict[str, Any]:
    as_of = q.as_of or now
    local_tz = service.domain.rules.calendar.timezone
    known_events(q, service.domain)
    cases = list(session.scalars(filtered(q, as_of, principal, local_tz).limit(q.limit)))
    xs, ys = from_wgs84(np.array([c.lon for c in cases]), np.array([c.lat for c in cases]), q.crs)
    features = [
        {
            "type": "Feature",
            "id": case.id,
            "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
            "properties": summary(case, as_of).model_dump(mode="json"),  # lat/lon: the case's WGS-84
        }
        for case, x, y in zip(cases, xs, ys, strict=True)
    ]
    return {"type": "FeatureCollection", "features": features, **crs_member(q.crs)}


@router.get("/v1/departments", response_model=DepartmentsOut, summary="Departments cases go to")
def departments(
    _: Reader,
    service: ServiceDep,
) -> DepartmentsOut:
    routing = service.domain.routing
    return DepartmentsOut(departments=list(routing.departments), default=routing.default)


@router.get("/v1/events", response_model=list[EventOut], summary="Event classes a case can have")
def events(
    _: Reader,
    service: ServiceDep,
) -> list[EventOut]:
    return [
        EventOut.model_validate({**vars(e), "limit": e.deadline.amount, "unit": e.deadline.unit})
        for e in service.domain.rules.taxonomy.events.values()
    ]


@router.get(
    "/v1/cases/{case_id}",
    response_model=CaseDetail,
    summary="One case with its evidence, flow log and the actions allowed now; ETag = version",
    responses={200: {"headers": ETAG}},
)
def get_case(
    case_id: CaseId,
    principal: Reader,
    session: DbSession,
    service: ServiceDep,
    response: Response,
    now: Now,
) -> CaseDetail:
    case = load_case(session, case_id, principal)
    response.headers["ETag"] = etag(case)
    return detail(case, now, service.domain, principal, session)


def check_if_match(if_match: str | None, case: Case) -> None:
    """Optimistic locking: a change must name the version it was based on.

    The case row, its evidence and its flow log are read by separate statements: a step committed
    between them left a case of the old version with the new flow log (the loser of two operators
    acting at once got a 409 "time before the case's last step", naming the old state). The
    version is read again after them, so such a torn read is the 412 of a stale ETag.
    """
    if if_match is None:
        raise PreconditionRequired()
    tags = {t.strip().removeprefix("W/") for t in if_match.split(",")}
    if "*" not in tags and etag(case) not in tags:
        raise StaleVersion(if_match, case.version)
    session = object_session(case)
    current = session.scalar(select(Case.version).where(Case.id == case.id)) if session else case.version
    if current != case.version:
        raise StaleVersion(if_match, current)


def command_of(
    body: TransitionIn, case: Case, session: Session, domain: Domain, principal: Principal, now: datetime
) -> Command:
    """Fill defaults (time, department) and check what the request names exists and fits the case."""
    if principal.user_id is not None and body.operator not in (None, principal.name):
        raise InvalidInput("operator", "a signed-in person acts under their own name")
    if body.operator:  # the flow log shows it as a person's name: the rule for names (a U+202E forged one)
        check_name("operator", body.operator)
    at = body.at or now
    if at > now + CLOCK_SKEW:
        local_tz = domain.rules.calendar.timezone
        server_time = local_iso(now, local_tz)
        raise InvalidInput("at", f"{local_iso(at, local_tz)} is in the future (server time {server_time})")
    department = body.department
    if body.action is Action.DISPATCH:
        department = department or domain.routing.department_for(case.event, case.grid_code, case.street)
        if department not in domain.routing.departments:
            raise InvalidInput(
                "department", f"'{department}' is not one of {', '.join(domain.routing.departments)}"
            )
    if body.action is Action.HANDLE and body.evidence_id is not None:
        photo = session.get(Evidence, body.evidence_id)
        if photo is None or photo.case_id != case.id or photo.role != "after":
            raise InvalidInput(
                "evidence_id",
                f"{body.evidence_id} is not an after-photo of case {case.id}; "
                f"upload one to /v1/cases/{case.id}/evidence with role=after",
            )
        if (photo.extra or {}).get("handled_at"):
            raise InvalidInput("evidence_id", f"after-photo {photo.id} already supported an earlier handling")
    return Command(
        action=body.action,
        operator=body.operator or principal.name,
        user_id=principal.user_id,
        at=at,
        note=body.note,
        department=department,
        event=body.event,
        evidence_id=body.evidence_id,
        extend_by=body.extend_by,
    )


@router.post(
    "/v1/cases/{case_id}/transitions",
    response_model=CaseDetail,
    summary="Move the case through the workflow (needs If-Match with the case's ETag)",
    responses={**STALE_RESPONSES, 200: {"headers": ETAG}},
)
def transition(
    case_id: CaseId,
    principal: Writer,
    body: TransitionIn,
    session: DbSession,
    service: ServiceDep,
    response: Response,
    now: Now,
    if_match: IfMatch = None,
) -> CaseDetail:
    check_action(principal, body.action)
    case = load_case(session, case_id, principal)
    check_own_report(principal, body.action, case)
    check_if_match(if_match, case)
    domain = service.domain
    command = command_of(body, case, session, domain, principal, now)
    command = verified_closing(body, case, session, command)
    try:
        domain.move(case, command)
    except InvalidTransition as refused:  # what the caller may do instead, as `allowed_actions` of GET
        allowed = refused.extra.get("allowed_actions", [])
        refused.extra["allowed_actions"] = [a for a in allowed if may_act(principal, Action(a), case)]
        raise
    withdraw_extensions(session, case, case.flow[-1])
    if command.action is Action.DISPATCH:  # the department's message is queued with the step itself
        enqueue_dispatched(session, service.notify, case, command.at)
    if command.action is Action.HANDLE and command.evidence_id is not None:
        photo = session.get(Evidence, command.evidence_id)
        if photo is not None:
            photo.extra = {**(photo.extra or {}), "handled_at": command.at.isoformat()}
    session.commit()
    session.expire(case, ["evidence"])  # read again: a photo added while the step was decided is on it
    response.headers["ETag"] = etag(case)
    return detail(case, now, domain, principal, session)


def verified_closing(body: TransitionIn, case: Case, session: Session, command: Command) -> Command:
    """`handle` and `check_pass` stand on an after-photo that passed its check (serve/cases/closing.py),
    or on a person's reason to accept it anyway, which the step's flow-log note keeps."""
    if command.action is Action.HANDLE and command.evidence_id is not None:
        photo = session.get(Evidence, command.evidence_id)
    elif command.action is Action.CHECK_PASS:
        photo = standing_after_photo(case)
    else:
        return command
    failed = failed_checks(photo)
    if not failed:
        return command
    if not body.override_reason:
        raise AfterPhotoFailed(command.action.value, photo.id if photo else None, failed)
    return replace(command, note=override_note(command.note, failed, body.override_reason))


@router.post(
    "/v1/cases/{case_id}/extensions",
    response_model=ExtensionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Ask for more time (延期申请); the deadline moves only when another role approves",
    responses={409: {"description": "the case cannot be extended now, or a request is already waiting"}},
)
def ask_extension(
    case_id: CaseId, principal: Writer, body: ExtensionIn, session: DbSession, now: Now
) -> ExtensionRequest:
    case = load_case(session, case_id, principal)
    row = request_extension(session, case, principal, extend_by=body.extend_by, note=body.note, now=now)
    session.commit()
    return row


@router.get("/v1/extensions", response_model=list[ExtensionOut], summary="Extension requests, oldest first")
def list_extensions(
    principal: Reader,
    session: DbSession,
    state: Annotated[ExtensionState | None, Query(description="only requests in this state")] = None,
) -> list[ExtensionRequest]:
    query = select(ExtensionRequest).join(Case).order_by(ExtensionRequest.id)
    if state is not None:
        query = query.where(ExtensionRequest.state == state)
    if principal.role in DEPARTMENT_ROLES:
        query = query.where(Case.department == principal.department)
    return list(session.scalars(query))


@router.post(
    "/v1/extensions/{request_id}/decision",
    response_model=ExtensionOut,
    summary="Approve (the deadline moves, an `extend` step names both people) or refuse a request",
    responses={409: {"description": "already decided, or the case can no longer be extended"}},
)
def decide_extension(
    request_id: Annotated[int, Path(ge=1, le=MAX_ID, description="extension request id"), DIGITS],
    principal: Writer,
    body: DecisionIn,
    session: DbSession,
    service: ServiceDep,
    now: Now,
) -> ExtensionRequest:
    row = session.get(ExtensionRequest, request_id)
    if row is None:
        raise NotFound("extension request", request_id)
    case = load_case(session, row.case_id, principal)
    check_decider(row, principal)
    if body.approve:
        note = f"延期申请 #{row.id} ({row.requested_by}): {row.note}" + (
            f"; {body.note}" if body.note else ""
        )
        command = Command(
            action=Action.EXTEND,
            operator=principal.name,
            user_id=principal.user_id,
            at=now,
            note=note[:4000],
            extend_by=row.extend_by,
        )
        service.domain.move(case, command)
    row.state = ExtensionState.APPROVED if body.approve else ExtensionState.REFUSED
    row.decided_by, row.decided_at, row.decision_note = principal.name, now, body.note
    session.commit()
    return row
