"""Open311 GeoReport v2 mapping (domain doc): service_code = event code (GB/T 47678.5, unique and
numeric, unlike CJ/T 214's 'local'), agency_responsible = department, expected_datetime = deadline,
status closed only when the case reached a final state.

A citizen's request keeps its text (and media_url) as `reference` evidence: its sha256 is that of
the report's own fields, so the same report sent twice adds nothing. It carries no photo (media_url
is a link this service does not fetch), so it does not pass the photo intake
(serve/cases/intake.py): its time is when the request was received (GeoReport's
requested_datetime), and it is filed by `record_finding` like every finding.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from serve.api.idempotency import request_hash
from serve.api.schemas import Open311Request, Open311Service
from serve.cases.enums import CaseSource, EvidenceRole
from serve.cases.errors import InvalidInput
from serve.cases.findings import Finding
from serve.cases.orm import Case
from serve.cases.workflow import TERMINAL_STATES
from vision.core.taxonomy import Event, Taxonomy

MAX_RANGE = timedelta(days=90)
MAX_RESULTS = 1000


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
    raise InvalidInput("service_code", f"'{service_code}' is not a service of GET /open311/v2/services.json")


def _iso(moment: datetime | None, tz: tzinfo) -> str | None:
    return moment.astimezone(tz).isoformat(timespec="seconds") if moment else None


def as_request(case: Case, taxonomy: Taxonomy, tz: tzinfo, base_url: str) -> Open311Request:
    event = taxonomy.events.get(case.event)
    last = case.flow[-1] if case.flow else None
    photo = next((e for e in case.evidence if e.role != EvidenceRole.REFERENCE), None)
    reference = next((e for e in case.evidence if e.role == EvidenceRole.REFERENCE and "://" in e.path), None)
    media_url = f"{base_url}v1/evidence/{photo.id}" if photo else (reference.path if reference else None)
    return Open311Request(
        service_request_id=case.number,
        status="closed" if case.state in TERMINAL_STATES else "open",
        status_notes=case.state + (f": {last.note}" if last and last.note else ""),
        service_name=f"{event.name_zh} {event.name}" if event else case.event,
        service_code=case.gbt47678,
        description=case.description,
        agency_responsible=case.department,
        service_notice=None,
        requested_datetime=_iso(case.first_seen_at, tz) or "",
        updated_datetime=_iso(last.at if last else case.last_seen_at, tz) or "",
        expected_datetime=_iso(case.deadline_at, tz),
        address=case.address,
        address_id=case.grid_code,
        zipcode=None,
        lat=case.lat,
        long=case.lon,
        media_url=media_url,
    )


def citizen_finding(
    *,
    event: Event,
    lat: float | None,
    lon: float | None,
    address: str | None,
    description: str | None,
    media_url: str | None,
    reporter: str,
    now: datetime,
) -> Finding:
    """A citizen's request as a finding: position required (this service does not geocode)."""
    if lat is None or lon is None:
        raise InvalidInput("lat/long", "both are required: this server does not geocode address_string")
    fields: dict[str, Any] = {
        "service_code": event.gbt47678,
        "lat": lat,
        "long": lon,
        "address_string": address,
        "description": description,
        "media_url": media_url,
    }
    return Finding(
        event=event.key,
        lat=lat,
        lon=lon,
        seen_at=now,
        photo_path=media_url or "open311 request",
        photo_sha256=request_hash(fields),
        source=CaseSource.PUBLIC,
        reporter=reporter,
        role=EvidenceRole.REFERENCE,
        extra={"open311": fields},
    )


def check_range(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """GeoReport v2: at most 90 days; by default the 90 days up to now (or up to end_date)."""
    end = end or (start + MAX_RANGE if start else now)
    start = start or end - MAX_RANGE
    if end < start:
        raise InvalidInput("end_date", "is before start_date")
    if end - start > MAX_RANGE:
        raise InvalidInput("start_date/end_date", "may be at most 90 days apart")
    return start, end
