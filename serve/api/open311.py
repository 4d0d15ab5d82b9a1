"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) mapped onto grid cases.

The mapping (domain doc): service_code = event code (GB/T 47678.5, unique and numeric, unlike
CJ/T 214's 'local'), service_request_id = case number, agency_responsible = department,
expected_datetime = deadline, status closed only when the case reached a final state.

As the specification has it: every method answers `.json` and `.xml` (XML is the required one);
reads are public (no key: a key in a URL ends up in access logs, so it is only read from a POST's
form or a header); `description` and `address` are the citizen's own words; `media_url` is a public
address of the case's photo, faces and plates blurred; dates without an offset are the bureau's
local time (a date alone is its whole day); errors are GeoReport's list of {code, description}
(serve/api/problems.py).

A citizen's request keeps its fields as `reference` evidence: its sha256 is that of the fields, so
the same request sent twice adds nothing. It carries no photo (media_url is a link this service
does not fetch), so it does not pass the photo intake; its time is when it was received, its place
the given lat/long, else the unit grid its address_string or address_id names (the grid's
representative point, said so in the evidence). Outside every grid it is refused like a photo
(serve/cases/intake.py). With no place at all it is held (`CitizenRequest`) for a person to place,
and the answer is a token: GET tokens/{token} gives the case number once it is placed.
"""

from __future__ import annotations

import re
import secrets
import xml.etree.ElementTree as ET
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from fastapi import Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from serve.api.problems import xml_text
from serve.api.schemas import Open311Created, Open311Request, Open311Service
from serve.cases.closing import own_remark
from serve.cases.coords import CoordSystem, position_to_wgs84
from serve.cases.enums import REPORT_STEP, Action, CaseSource, EvidenceRole, EvidenceStep, State
from serve.cases.errors import InvalidInput, OutsideJurisdiction
from serve.cases.findings import CaseRules, CaseUpdate, Finding, lock_intake, record_finding
from serve.cases.fingerprints import held_request_key, request_hash
from serve.cases.grids import Grid, GridIndex
from serve.cases.intake import in_jurisdiction
from serve.cases.orm import Case, CitizenRequest
from serve.cases.regrouping import merged_into
from serve.cases.times import computable
from serve.cases.workflow import AUTO_FILER, TERMINAL_STATES
from vision.core.imageio import Position
from vision.core.taxonomy import Event, Taxonomy
from vision.data.annotations.records import shown

Format = Literal["json", "xml"]
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-12-04T00:00:00+08:00"  # when these endpoints last changed (discovery)
MEDIA_TYPES = {"json": "application/json", "xml": "text/xml"}
MAX_RANGE = timedelta(days=90)
MAX_RESULTS = 1000
# XML: the element of each item of a list, by the list's element (GeoReport v2's examples)
XML_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
}
EVIDENCE_STEPS = frozenset(step.value for step in EvidenceStep)
# status_notes: what a citizen reads about the state of the case their request became
STATUS_NOTES = {
    State.REPORTED: "已收到，待核实",
    State.VERIFIED: "经核实属实，待立案",
    State.NOT_FILED: "经核实不予立案",
    State.FILED: "已立案，待派遣",
    State.DISPATCHED: "已派遣至处置部门",
    State.HANDLING: "正在处置",
    State.HANDLED: "已处置，待核查",
    State.CHECK_PASSED: "核查通过，待结案",
    State.CLOSED: "已结案",
    State.SUSPENDED: "暂缓处理（挂账）",
    State.CANCELLED: "已作废",
    State.FORCE_CLOSED: "已结案（强制结案）",
}
NOTICE_NEW = "已受理，新建案卷"
NOTICE_JOINED = "同一问题已有在办案卷，已并入该案卷"
NOTICE_HELD = "已收到；地址需人工定位，定位后凭 token 可查到案卷号"


# --- formats ----------------------------------------------------------------------------------


def render(fmt: Format, root: str, body: Any, status_code: int = 200, **headers: str) -> Response:
    """A GeoReport answer: the JSON body as is, or the XML document with `root` around it."""
    if fmt == "json":
        return JSONResponse(body, status_code=status_code, headers=headers or None)
    return Response(
        xml_document(root, body),
        status_code=status_code,
        media_type="text/xml; charset=utf-8",
        headers=headers or None,
    )


def xml_document(root: str, value: Any) -> bytes:
    """UTF-8 XML with its declaration, as the specification asks."""
    return bytes(ET.tostring(_element(root, value), encoding="utf-8", xml_declaration=True))


def _element(name: str, value: Any) -> ET.Element:
    element = ET.Element(name)
    if isinstance(value, dict):
        element.extend(_element(key, item) for key, item in value.items())
    elif isinstance(value, list):
        element.extend(_element(XML_ITEMS[name], item) for item in value)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = xml_text(str(value))
    return element


# --- services ---------------------------------------------------------------------------------


def services(taxonomy: Taxonomy) -> list[Open311Service]:
    return [
        Open311Service(
            service_code=event.gbt47678,
            service_name=f"{event.name_zh} {event.name}",
            description=f"{event.name_zh}, CJ/T 214 {event.cjt214} / GB/T 47678.5 {event.gbt47678}",
            metadata=False,
            type="realtime",
            keywords=", ".join((event.name_zh, event.name, event.disorder)),
            group=event.disorder,
        )
        for event in taxonomy.events.values()
    ]


def event_of_code(taxonomy: Taxonomy, service_code: str) -> Event:
    for event in taxonomy.events.values():
        if event.gbt47678 == service_code:
            return event
    raise InvalidInput(
        "service_code", f"{shown(service_code)} is not a service of GET /open311/v2/services.json"
    )


# --- requests out -----------------------------------------------------------------------------


def citizen_fields(case: Case) -> dict[str, Any]:
    """The GeoReport fields of the first citizen request the case holds ({} for other cases)."""
    for evidence in case.evidence:
        if evidence.role == EvidenceRole.REFERENCE and evidence.extra and "open311" in evidence.extra:
            fields: dict[str, Any] = evidence.extra["open311"]
            return fields
    return {}


def status_notes(case: Case) -> str:
    """The state in plain Chinese, with the remark of the latest workflow step a person took. Evidence
    steps (detach, split, merge) are the bureau's bookkeeping of photos and files: not the public's;
    nor are auto-filing's rule nor an after-photo override's failed checks and reason (own_remark)."""
    notes = STATUS_NOTES.get(case.state, "处理中")
    last = next((e for e in reversed(case.flow) if e.action not in EVIDENCE_STEPS), None)
    if last is not None and last.action == Action.EXTEND:  # its note names who asked: staff, not public
        return f"{notes}：处置期限已延长"
    if last is None or last.action == REPORT_STEP or last.operator == AUTO_FILER:
        return notes
    merged = merged_into(last)
    if merged:
        return f"{notes}：已并入案卷 {merged[0]}：{merged[1]}"
    remark = own_remark(last.note)
    return f"{notes}：{remark}" if remark else notes


def as_request(case: Case, taxonomy: Taxonomy, base_url: str) -> Open311Request:
    event = taxonomy.events.get(case.event)
    last = case.flow[-1] if case.flow else None
    citizen = citizen_fields(case)
    photo = next((e for e in case.evidence if e.role != EvidenceRole.REFERENCE), None)
    media_url = f"{base_url}open311/v2/media/{photo.id}.jpg" if photo else citizen.get("media_url")
    return Open311Request(
        service_request_id=case.number,
        status="closed" if case.state in TERMINAL_STATES else "open",
        status_notes=status_notes(case),
        service_name=f"{event.name_zh} {event.name}" if event else case.event,
        service_code=case.gbt47678,
        description=citizen.get("description") or case.description,
        agency_responsible=case.department,
        service_notice=None,
        requested_datetime=case.first_seen_at,
        updated_datetime=last.at if last else case.last_seen_at,
        expected_datetime=case.deadline_at,
        address=citizen.get("address_string") or case.address,
        address_id=case.grid_code,
        zipcode=None,
        lat=case.lat,
        long=case.lon,
        media_url=media_url,
    )


def read_moment(name: str, text: str | None, tz: tzinfo, *, end: bool = False) -> datetime | None:
    """A GeoReport date: ISO 8601 with or without an offset (without: the bureau's time); a date
    alone means its whole day (from its start, or to its end for `end`). A '+' a client left
    unencoded in the query arrives as a space and is read as the '+' it was."""
    if text is None or not text.strip():
        return None
    text = re.sub(r" (\d{2}(:?\d{2})?)$", r"+\1", text.strip())
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end else time.min, tz)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            name, f"{text!r} is not an ISO 8601 date or time (2025-09-30, 2025-09-30T10:00:00+08:00)"
        ) from None
    try:  # year 9999 at -14:00 has no UTC time, nor a day after it
        return computable(moment if moment.tzinfo is not None else moment.replace(tzinfo=tz))
    except ValueError as err:
        raise InvalidInput(name, str(err)) from None


def check_range(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """GeoReport v2: at most 90 days; by default the 90 days up to now (or up to end_date). An end at
    the last instant of a day (a date alone as end_date) counts as that day: dates 90 days apart pass,
    times further apart than 90 days do not."""
    end = end or (start + MAX_RANGE if start else now)
    start = start or end - MAX_RANGE
    if end < start:
        raise InvalidInput("end_date", "is before start_date")
    span = end - start
    if end.time() == time.max:  # the day's end stands for the day: 2025-01-01..2025-04-01 is 90 days
        span -= timedelta(days=1) - timedelta(microseconds=1)
    if span > MAX_RANGE:
        raise InvalidInput("start_date/end_date", "may be at most 90 days apart")
    return start, end


# --- requests in ------------------------------------------------------------------------------


def named_grid(text: str | None, grids: GridIndex | None) -> Grid | None:
    """The one unit grid an address names (its code, or its name such as 汝河社区第6网格), if exactly one."""
    if not text or grids is None:
        return None
    named = {grid.code: grid for grid in grids if grid.code == text.strip() or grid.name in text}
    return next(iter(named.values())) if len(named) == 1 else None


def place_of(
    lat: float | None,
    lon: float | None,
    address_string: str | None,
    address_id: str | None,
    rules: CaseRules,
    coord_system: CoordSystem = "wgs84",
) -> tuple[Position, str] | None:
    """Where a request is and how that is known; None where a person must place it. lat/long
    come in `coord_system` (a WeChat mini-program's or AMap's gcj02) and are kept as WGS-84.

    Refuses a place outside every grid of the layout (the jurisdiction check of the photo intake).
    """
    if (lat is None) != (lon is None):
        raise InvalidInput("lat/long", "give both, or neither with an address_string or address_id")
    if lat is not None and lon is not None:
        if (lat, lon) == (0, 0):
            raise InvalidInput("lat/long", "(0, 0) is where a phone without a GPS fix puts a report")
        position, how = Position(*position_to_wgs84(lat, lon, coord_system)), "lat/long"
    else:
        if not (address_string and address_string.strip()) and not address_id:
            raise InvalidInput("lat/long", "required, unless an address_string or address_id says where")
        grid = named_grid(address_id, rules.grids) or named_grid(address_string, rules.grids)
        if grid is None:
            return None
        point = grid.geometry.representative_point()
        position, how = Position(point.y, point.x), f"unit grid {grid.code} named in the address"
    try:
        in_jurisdiction(position, rules)
    except OutsideJurisdiction as err:
        if lat is not None and lon is not None:  # in GeoReport's words, the numbers as the citizen sent them
            err.sent_as(("lat", "long"), lat, lon, coord_system)
        raise
    return position, how


def file_request(
    session: Session,
    *,
    event: Event,
    fields: dict[str, Any],
    position: Position,
    placed: str,
    reporter: str,
    received_at: datetime,
    rules: CaseRules,
) -> CaseUpdate:
    """A placed citizen request as a finding: a new case or evidence of the open one it repeats."""
    stored = {**fields, "placed": placed}
    return record_finding(
        session,
        Finding(
            event=event.key,
            lat=position.lat,
            lon=position.lon,
            seen_at=received_at,
            photo_path=fields.get("media_url") or "open311 request",
            photo_sha256=request_hash(fields, position.lat, position.lon),
            source=CaseSource.PUBLIC,
            reporter=reporter,
            role=EvidenceRole.REFERENCE,
            extra={"open311": stored},
        ),
        rules,
    )


def same_held(session: Session, event: Event, fields: dict[str, Any]) -> CitizenRequest | None:
    """The held request these very fields made before: sent again (a retry without an
    Idempotency-Key), it is the same request, as a placed request sent twice adds nothing to its case.
    One indexed lookup by the fields' key, however many requests the event holds."""
    key = held_request_key(event.key, fields)
    query = select(CitizenRequest).where(CitizenRequest.fields_sha256 == key).order_by(CitizenRequest.id)
    return session.scalars(query.limit(1)).first()


def take_request(
    session: Session,
    *,
    event: Event,
    fields: dict[str, Any],
    place: tuple[Position, str] | None,
    reporter: str,
    now: datetime,
    rules: CaseRules,
) -> Open311Created:
    """File a request with a place, or hold one without for a person; what POST requests answers."""
    if place is None:
        lock_intake(session)  # the same request sent twice at once is held once
        held = same_held(session, event, fields)
        if held is not None and held.case_id is not None:
            number = session.get_one(Case, held.case_id).number
            return Open311Created(service_request_id=number, service_notice=NOTICE_JOINED, account_id=None)
        if held is not None:
            return Open311Created(
                service_request_id=None, token=held.token, service_notice=NOTICE_HELD, account_id=None
            )
        token = secrets.token_hex(16)
        session.add(
            CitizenRequest(
                token=token,
                event=event.key,
                fields=fields,
                fields_sha256=held_request_key(event.key, fields),
                reporter=reporter,
                received_at=now,
            )
        )
        session.flush()
        return Open311Created(
            service_request_id=None, token=token, service_notice=NOTICE_HELD, account_id=None
        )
    position, placed = place
    update = file_request(
        session,
        event=event,
        fields=fields,
        position=position,
        placed=placed,
        reporter=reporter,
        received_at=now,
        rules=rules,
    )
    notice = NOTICE_NEW if update.created else NOTICE_JOINED
    return Open311Created(service_request_id=update.case.number, service_notice=notice, account_id=None)
