"""Open311 GeoReport v2 as specified (serve/api/open311.py): discovery, services, a service's
definition, requests in and out, tokens, in `.json` and `.xml`; reads need no key. Media are the
case photos, public and blurred. Held requests (no place) are placed by a person under /v1."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Header, Path, Query, Response, status
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from serve.api.deps import (
    DbSession,
    EvidenceId,
    FormOfOneEach,
    Now,
    Open311Reporter,
    PublicBase,
    Reader,
    ServiceDep,
    Writer,
)
from serve.api.idempotency import REPLAY_HEADER, run_once
from serve.api.open311 import (
    CHANGESET,
    MAX_RESULTS,
    MEDIA_TYPES,
    SPECIFICATION,
    Format,
    as_request,
    check_range,
    event_of_code,
    file_request,
    place_of,
    read_moment,
    render,
    services,
    take_request,
)
from serve.api.redaction import PRIVACY_HEADER
from serve.api.schemas import (
    COORD_SYSTEM_HELP,
    CitizenRequestOut,
    Open311Created,
    Open311Discovery,
    Open311Endpoint,
    Open311Request,
    Open311Service,
    Open311ServiceDefinition,
    Open311Token,
    Placement,
)
from serve.cases.coords import CoordSystem, position_to_wgs84
from serve.cases.enums import EvidenceRole
from serve.cases.errors import Conflict, InvalidInput, NotFound, OutsideJurisdiction, as_sent
from serve.cases.evidence import evidence_file
from serve.cases.findings import lock_intake
from serve.cases.fingerprints import request_hash
from serve.cases.intake import in_jurisdiction
from serve.cases.orm import Case, CitizenRequest, Evidence
from serve.cases.people import check_place, may_file
from serve.cases.workflow import TERMINAL_STATES
from vision.core.imageio import Position

router = APIRouter(tags=["open311"])
V2 = "/open311/v2"
FormatPath = Annotated[Format, Path(description="json or xml (XML is GeoReport's required format)")]
XML_TOO: dict[str, Any] = {"content": {"text/xml": {}}, "description": "in the format the path names"}
BOTH: dict[int | str, dict[str, Any]] = {200: XML_TOO}
CONTACT = "数字化城市管理监督中心 (the bureau's digital city-management supervision centre)"
KEY_SERVICE = "an api_key with scope `report` is issued by the service's administrator (POST /v1/keys)"


@router.get("/open311/discovery.{fmt}", response_model=Open311Discovery, responses=BOTH, summary="Discovery")
def open311_discovery(fmt: FormatPath, base: PublicBase) -> Response:
    endpoint = Open311Endpoint(
        specification=SPECIFICATION,
        url=f"{base}open311/v2",
        changeset=CHANGESET,
        type="production",
        formats=list(MEDIA_TYPES.values())[::-1],
    )
    body = Open311Discovery(
        changeset=CHANGESET, contact=CONTACT, key_service=KEY_SERVICE, endpoints=[endpoint]
    )
    return render(fmt, "discovery", body.model_dump())


@router.get(
    V2 + "/services.{fmt}",
    response_model=list[Open311Service],
    responses=BOTH,
    summary="Services: one per event class",
)
def list_services(fmt: FormatPath, service: ServiceDep) -> Response:
    return render(fmt, "services", [s.model_dump() for s in services(service.domain.rules.taxonomy)])


@router.get(
    V2 + "/services/{service_code}.{fmt}",
    response_model=Open311ServiceDefinition,
    responses=BOTH,
    summary="A service's definition: no attributes beyond GeoReport's own fields",
)
def service_definition(
    service_code: Annotated[str, Path(description="from services")], fmt: FormatPath, service: ServiceDep
) -> Response:
    taxonomy = service.domain.rules.taxonomy
    if not any(event.gbt47678 == service_code for event in taxonomy.events.values()):
        raise NotFound("service", as_sent(service_code))
    definition = Open311ServiceDefinition(service_code=service_code, attributes=[])
    return render(fmt, "service_definition", definition.model_dump())


@router.post(
    V2 + "/requests.{fmt}",
    response_model=list[Open311Created],
    status_code=status.HTTP_201_CREATED,
    responses={201: XML_TOO},
    summary="A citizen's request: opens a case, joins the open case of the same problem, or is held "
    "(token) until a person places it",
)
def post_request(
    fmt: FormatPath,
    principal: Open311Reporter,
    _once: FormOfOneEach,
    service: ServiceDep,
    now: Now,
    service_code: Annotated[str, Form(description="from services")],
    lat: Annotated[
        float | None, Form(ge=-90, le=90, description="latitude (in coord_system, WGS-84 by default)")
    ] = None,
    long: Annotated[float | None, Form(ge=-180, le=180, description="longitude (in coord_system)")] = None,
    address_string: Annotated[
        str | None, Form(max_length=500, description="address as the citizen wrote it; kept as written")
    ] = None,
    address_id: Annotated[str | None, Form(max_length=32, description="a unit grid code")] = None,
    coord_system: Annotated[CoordSystem, Form(description=COORD_SYSTEM_HELP)] = "wgs84",
    description: Annotated[str | None, Form(max_length=4000, description="what the citizen saw")] = None,
    media_url: Annotated[str | None, Form(max_length=2000, description="URL of the citizen's photo")] = None,
    email: Annotated[str | None, Form(max_length=200, description="for a reply; never published")] = None,
    phone: Annotated[str | None, Form(max_length=40, description="for a reply; never published")] = None,
    first_name: Annotated[str | None, Form(max_length=100, description="never published")] = None,
    last_name: Annotated[str | None, Form(max_length=100, description="never published")] = None,
    device_id: Annotated[str | None, Form(max_length=200, description="the reporting device")] = None,
    account_id: Annotated[str | None, Form(max_length=200, description="the citizen's account")] = None,
    jurisdiction_id: Annotated[str | None, Form(description="accepted; this service is one bureau's")] = None,
    api_key: Annotated[str | None, Form(description="GeoReport v2 api_key (or a header)")] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=128, description="retries replay the answer")
    ] = None,
) -> Response:
    del api_key, jurisdiction_id  # the key is read by Open311Reporter; one jurisdiction here
    rules = service.domain.rules
    event = event_of_code(rules.taxonomy, service_code)
    if media_url and not media_url.startswith(("http://", "https://")):
        raise InvalidInput("media_url", "an http:// or https:// address of the photo")
    place = place_of(lat, long, address_string, address_id, rules, coord_system)
    fields: dict[str, Any] = {
        "service_code": service_code,
        "lat": lat,
        "long": long,
        **({"coord_system": coord_system} if coord_system != "wgs84" else {}),  # as sent; the case is WGS-84
        "address_string": address_string,
        "address_id": address_id,
        "description": description,
        "media_url": media_url or None,
    }
    contact = {
        key: value
        for key, value in {
            "email": email,
            "phone": phone,
            "first_name": first_name,
            "last_name": last_name,
            "device_id": device_id,
            "account_id": account_id,
        }.items()
        if value
    }
    if contact:
        fields["contact"] = contact

    def work(session: Any) -> dict[str, Any]:
        created = take_request(
            session, event=event, fields=fields, place=place, reporter=principal.name, now=now, rules=rules
        )
        answer = created.model_dump(mode="json")
        del answer["token" if created.token is None else "service_request_id"]  # one of them, as specified
        return {"items": [answer]}

    body, replayed = run_once(
        service.sessions,
        work,
        principal=principal.key_id,
        endpoint="open311-requests",
        key=idempotency_key,
        fingerprint=request_hash(fields),
        now=now,
        status_code=201,
    )
    headers = {REPLAY_HEADER: "true"} if replayed else {}
    return render(fmt, "service_requests", body["items"], status_code=201, **headers)


@router.get(
    V2 + "/requests.{fmt}",
    response_model=list[Open311Request],
    responses=BOTH,
    summary="Requests by id, service, dates, status (public)",
)
def get_requests(
    fmt: FormatPath,
    base: PublicBase,
    session: DbSession,
    service: ServiceDep,
    now: Now,
    service_request_id: Annotated[
        str | None, Query(description="comma-separated ids; other filters are then ignored")
    ] = None,
    service_code: Annotated[str | None, Query(description="comma-separated service codes")] = None,
    start_date: Annotated[
        str | None, Query(description="requested at or after; ISO 8601, without an offset the bureau's time")
    ] = None,
    end_date: Annotated[
        str | None, Query(description="requested at or before; at most 90 days after start_date")
    ] = None,
    status_: Annotated[
        str | None, Query(alias="status", description="open, closed, or both comma-separated")
    ] = None,
) -> Response:
    tz = service.domain.rules.calendar.timezone
    query = (
        select(Case).options(selectinload(Case.flow), selectinload(Case.evidence)).order_by(Case.id.desc())
    )
    if service_request_id:
        query = query.where(Case.number.in_([i.strip() for i in service_request_id.split(",") if i.strip()]))
    else:
        start, end = check_range(
            read_moment("start_date", start_date, tz), read_moment("end_date", end_date, tz, end=True), now
        )
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
    taxonomy = service.domain.rules.taxonomy
    return render(fmt, "service_requests", [as_request(c, taxonomy, base).model_dump() for c in cases])


@router.get(
    V2 + "/requests/{service_request_id}.{fmt}",
    response_model=list[Open311Request],
    responses=BOTH,
    summary="One request (a list of one; public)",
)
def get_request(
    service_request_id: Annotated[str, Path(description="case number (案卷号)")],
    fmt: FormatPath,
    base: PublicBase,
    session: DbSession,
    service: ServiceDep,
) -> Response:
    case = session.scalars(
        select(Case)
        .where(Case.number == service_request_id)
        .options(selectinload(Case.flow), selectinload(Case.evidence))
    ).one_or_none()
    if case is None:
        raise NotFound("service request", as_sent(service_request_id))
    answer = as_request(case, service.domain.rules.taxonomy, base)
    return render(fmt, "service_requests", [answer.model_dump()])


@router.get(
    V2 + "/tokens/{token}.{fmt}",
    response_model=list[Open311Token],
    responses=BOTH,
    summary="The case number of a held request once a person placed it (public)",
)
def get_token(
    token: Annotated[str, Path(max_length=64, description="from POST requests")],
    fmt: FormatPath,
    session: DbSession,
) -> Response:
    held = session.scalars(select(CitizenRequest).where(CitizenRequest.token == token)).one_or_none()
    if held is None:
        raise NotFound("token", as_sent(token))
    number = session.get_one(Case, held.case_id).number if held.case_id is not None else None
    return render(
        fmt, "service_requests", [Open311Token(service_request_id=number, token=token).model_dump()]
    )


@router.get(
    V2 + "/media/{evidence_id}.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the photo, faces and plates blurred"}},
    summary="A case photo as media_url gives it: public, faces and plates always blurred",
)
def open311_media(evidence_id: EvidenceId, session: DbSession, service: ServiceDep) -> Response:
    evidence = session.get(Evidence, evidence_id)
    if evidence is None or evidence.role == EvidenceRole.REFERENCE:  # a citizen's link is no file here
        raise NotFound("media", evidence_id)
    path = evidence_file(service.settings.evidence_dir, evidence.path, evidence.sha256)
    data = service.renders.redacted(path, evidence.sha256)
    return Response(data, media_type="image/jpeg", headers={PRIVACY_HEADER: "redacted"})


# --- held requests, for the people who place them ----------------------------------------------


def held_out(held: CitizenRequest, number: str | None, contact: bool = True) -> CitizenRequestOut:
    """`contact`: with the citizen's contact details (kept for the people who place requests: they
    call back to ask where; every other reader sees the words without who wrote them)."""
    return CitizenRequestOut(
        token=held.token,
        event=held.event,
        fields=held.fields if contact else {k: v for k, v in held.fields.items() if k != "contact"},
        reporter=held.reporter,
        received_at=held.received_at,
        service_request_id=number,
        case_id=held.case_id,
        placed_at=held.placed_at,
        placed_by=held.placed_by,
    )


@router.get(
    "/v1/citizen-requests",
    response_model=list[CitizenRequestOut],
    tags=["cases"],
    summary="Citizen requests without a place, held for a person to place (scope cases:read; the "
    "citizen's contact details only to the roles that place them)",
)
def list_held(
    principal: Reader,
    session: DbSession,
    state: Annotated[Literal["held", "placed", "all"], Query(description="which requests")] = "held",
) -> list[CitizenRequestOut]:
    query = select(CitizenRequest, Case.number).outerjoin(Case, Case.id == CitizenRequest.case_id)
    if state == "held":
        query = query.where(CitizenRequest.case_id.is_(None))
    elif state == "placed":
        query = query.where(CitizenRequest.case_id.is_not(None))
    rows = session.execute(query.order_by(CitizenRequest.received_at).limit(MAX_RESULTS))
    return [held_out(held, number, contact=may_file(principal)) for held, number in rows]


@router.post(
    "/v1/citizen-requests/{token}/place",
    response_model=CitizenRequestOut,
    tags=["cases"],
    summary="Place a held citizen request: it becomes a case (or joins the open one) at that position "
    "(scope cases:write; people in a role that files cases)",
    responses={409: {"description": "placed already: the problem names its case"}},
)
def place_held(
    token: Annotated[str, Path(max_length=64, description="the held request's token")],
    placement: Placement,
    principal: Writer,
    session: DbSession,
    service: ServiceDep,
    now: Now,
) -> CitizenRequestOut:
    check_place(principal)
    rules = service.domain.rules
    position = Position(*position_to_wgs84(placement.lat, placement.lon, placement.coord_system))
    try:
        in_jurisdiction(position, rules)
    except OutsideJurisdiction as err:
        err.sent_as(("lat", "lon"), placement.lat, placement.lon, placement.coord_system)
        raise
    lock_intake(session)  # first statement is a write (SQLite cannot upgrade a reader)
    held = session.scalars(select(CitizenRequest).where(CitizenRequest.token == token)).one_or_none()
    if held is None:
        raise NotFound("held request", as_sent(token))
    if held.case_id is not None:
        number = session.get_one(Case, held.case_id).number
        raise Conflict(f"held request {token} was placed already, as case {number}", token=token, case=number)
    event = rules.taxonomy.events.get(held.event)
    if event is None:
        raise InvalidInput("event", f"'{held.event}' is no longer an event of the taxonomy")
    update = file_request(
        session,
        event=event,
        fields=held.fields,
        position=position,
        placed=f"placed by {principal.name}",
        reporter=held.reporter,
        received_at=held.received_at,
        rules=rules,
    )
    held.case_id, held.placed_at, held.placed_by = update.case.id, now, principal.name
    session.commit()
    return held_out(held, update.case.number)
