"""POST /v1/reports: a patrol photo in; its findings become cases or join open duplicates.

The same rules as a `scan` of an archive: a class files its event when the taxonomy marks it as a
patrol finding and the score reaches its min_confidence; one finding per event per photo (all its
boxes are the evidence); the duplicate rule and numbering are serve.cases.findings'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime
from sqlalchemy import select
from sqlalchemy.orm import Session

from serve.api.deps import DetectorDep, ImageUpload, Now, Reporting, ServiceDep, UploadedImage
from serve.api.idempotency import REPLAY_HEADER, request_hash, run_once
from serve.api.routers.detect import Analysis, analyse, detections_out
from serve.api.schemas import CaseRef, ReportResponse
from serve.api.state import Service
from serve.cases.errors import InvalidInput
from serve.cases.evidence import store_image
from serve.cases.findings import Finding, boxes_of, lock_intake, patrol_findings, record_finding
from serve.cases.orm import Photo

router = APIRouter(tags=["reports"])


@router.post(
    "/v1/reports",
    response_model=ReportResponse,
    summary="Report a patrol photo: detections, and the cases they open or join (scope report)",
    responses={422: {"description": "bad field, or an Idempotency-Key reused for another request"}},
)
def report(
    principal: Reporting,
    upload: ImageUpload,
    service: ServiceDep,
    detector: DetectorDep,
    now: Now,
    lat: Annotated[float | None, Form(ge=-90, le=90, description="WGS-84 latitude; default EXIF GPS")] = None,
    lon: Annotated[
        float | None, Form(ge=-180, le=180, description="WGS-84 longitude; default EXIF GPS")
    ] = None,
    taken_at: Annotated[
        AwareDatetime | None, Form(description="when taken, ISO 8601 with offset; default EXIF")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", max_length=128, description="retries with the same key replay the answer"
        ),
    ] = None,
) -> Any:
    if (lat is None) != (lon is None):
        raise InvalidInput("lat/lon", "give both or neither")
    fingerprint = request_hash(upload.sha256, lat, lon, taken_at)

    def work(session: Session) -> dict[str, Any]:
        # The model runs here: a replayed request never gets this far. No statement has run yet.
        tz = service.domain.rules.calendar.timezone
        analysis = service.gate.run_blocking(analyse, detector, upload.data, upload.filename, tz)
        service.metrics.inference.observe(analysis.inference_s)
        return record_report(
            session, service, principal.name, upload, analysis, lat, lon, taken_at, now, detector.version
        )

    body, replayed = run_once(
        service.sessions,
        work,
        principal=principal.key_id,
        endpoint="reports",
        key=idempotency_key,
        fingerprint=fingerprint,
        now=now,
    )
    return JSONResponse(body, headers={REPLAY_HEADER: "true"} if replayed else None)


def record_report(
    session: Session,
    service: Service,
    reporter: str,
    upload: UploadedImage,
    analysis: Analysis,
    lat: float | None,
    lon: float | None,
    taken_at: datetime | None,
    now: datetime,
    model_version: str,
) -> dict[str, Any]:
    """Store the photo, record its findings as cases, and return the response body (JSON-ready)."""
    taxonomy = service.domain.rules.taxonomy
    photo = analysis.photo
    position = (
        (lat, lon)
        if lat is not None and lon is not None
        else ((photo.meta.position.lat, photo.meta.position.lon) if photo.meta.position else None)
    )
    seen_at = taken_at or photo.meta.taken_at or now
    path = store_image(service.settings.evidence_dir, upload.data, upload.sha256, photo.format)
    lock_intake(session)  # first statement of the transaction is a write (SQLite cannot upgrade a reader)
    grid = service.domain.rules.grids.locate(*position) if position and service.domain.rules.grids else None
    row = session.scalars(select(Photo).where(Photo.sha256 == upload.sha256)).one_or_none()
    if row is None:
        row = Photo(
            sha256=upload.sha256,
            path=str(path),
            source="upload",
            status="done" if position else "unlocated",
            width=photo.width,
            height=photo.height,
            taken_at=seen_at,
            lat=position[0] if position else None,
            lon=position[1] if position else None,
            grid_code=grid.code if grid else None,
            model_version=model_version,
            detections=[b.to_json() for b in boxes_of(analysis.detections, taxonomy.names)],
            processed_at=now,
        )
        session.add(row)
        session.flush()
    refs = []
    if position is not None:
        for event, boxes in sorted(patrol_findings(analysis.detections, taxonomy).items()):
            update = record_finding(
                session,
                Finding(
                    event=event,
                    lat=position[0],
                    lon=position[1],
                    seen_at=seen_at,
                    photo_path=str(path),
                    photo_sha256=upload.sha256,
                    boxes=boxes,
                    model_version=model_version,
                    source="patrol_photo",
                    reporter=reporter,
                    photo_id=row.id,
                ),
                service.domain.rules,
            )
            refs.append(
                CaseRef(
                    id=update.case.id,
                    number=update.case.number,
                    event=update.case.event,
                    state=update.case.state,
                    created=update.created,
                )
            )
    response = ReportResponse(
        photo_sha256=upload.sha256,
        taken_at=seen_at,
        lat=position[0] if position else None,
        lon=position[1] if position else None,
        grid_code=grid.code if grid else None,
        unlocated=position is None,
        model_version=model_version,
        detections=detections_out(analysis.detections, taxonomy),
        cases=refs,
    )
    return response.model_dump(mode="json")
