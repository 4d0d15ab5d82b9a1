"""POST /v1/reports: a patrol photo in; its findings become cases or join open duplicates.

The photo goes through the same intake as a `scan` of an archive (serve/cases/intake.py): EXIF
position and time first, the form's `lat`/`lon`/`taken_at` where the photo has none, never the
server's clock (a photo without a time is kept as `undated` and files nothing); the taxonomy's
patrol rule; one finding per event per photo; the duplicate rule and numbering of
serve.cases.findings. A position outside every unit grid is refused (422, nothing kept). The same
bytes sent again answer what they gave the first time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Form, Header
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from serve.api.deps import DetectorDep, ImageUpload, Now, Reporting, ServiceDep, UploadedImage
from serve.api.idempotency import REPLAY_HEADER, run_once
from serve.api.routers.detect import Analysis, analyse, detections_out
from serve.api.schemas import COORD_SYSTEM_HELP, CaseRef, IsoTime, ReportResponse
from serve.api.state import Service
from serve.cases.auth import Principal
from serve.cases.coords import CoordSystem, position_to_wgs84
from serve.cases.enums import PhotoSource, PhotoStatus
from serve.cases.errors import InvalidInput, OutsideJurisdiction
from serve.cases.evidence import image_path, store_image
from serve.cases.findings import CaseRules, lock_intake
from serve.cases.fingerprints import request_hash
from serve.cases.intake import (
    Given,
    IncomingPhoto,
    copied_cases,
    photo_cases,
    reads_in_full,
    refuse_outside,
    take_photo,
)
from vision.core.imageio import Position, decode_photo
from vision.core.phash import perceptual_hash
from vision.detect.flyers import FlyerFinder

router = APIRouter(tags=["reports"])


@router.post(
    "/v1/reports",
    response_model=ReportResponse,
    summary="Report a patrol photo: detections, and the cases they open or join (scope report)",
    responses={
        422: {
            "description": "bad field, a position outside every unit grid, or an Idempotency-Key reused "
            "for another request"
        }
    },
)
def report(
    principal: Reporting,
    upload: ImageUpload,
    service: ServiceDep,
    detector: DetectorDep,
    now: Now,
    lat: Annotated[
        float | None,
        Form(ge=-90, le=90, description="latitude (in coord_system), where the photo has no EXIF GPS"),
    ] = None,
    lon: Annotated[
        float | None,
        Form(ge=-180, le=180, description="longitude (in coord_system), where the photo has no EXIF GPS"),
    ] = None,
    taken_at: Annotated[
        IsoTime | None,
        Form(description="when taken, ISO 8601 with offset, where the photo has no EXIF capture time"),
    ] = None,
    coord_system: Annotated[CoordSystem, Form(description=COORD_SYSTEM_HELP)] = "wgs84",
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", max_length=128, description="retries with the same key replay the answer"
        ),
    ] = None,
) -> Any:
    if (lat is None) != (lon is None):
        raise InvalidInput("lat/lon", "give both or neither")
    if (lat, lon) == (0, 0):
        raise InvalidInput(
            "lat/lon", "(0, 0) is where a phone without a GPS fix puts a photo, not a position"
        )
    sent = (lat, lon) if lat is not None and lon is not None else None
    if sent is not None:
        lat, lon = position_to_wgs84(*sent, coord_system)  # the edge: inside, positions are WGS-84
    fingerprint = request_hash(upload.sha256, lat, lon, taken_at)
    given = Given(Position(lat, lon) if lat is not None and lon is not None else None, taken_at)

    def work(session: Session) -> dict[str, Any]:
        # The model runs here: a replayed request never gets this far. No statement has run yet.
        tz = service.domain.rules.calendar.timezone
        min_side = service.settings.min_photo_side
        analysis = service.gate.run_blocking(analyse, detector, upload.data, upload.filename, tz, min_side)
        service.metrics.inference.observe(analysis.inference_s)
        if service.flyers is not None:
            analysis = service.gate.run_blocking(
                read_flyers, service.flyers, service.domain.rules, analysis, given, upload
            )
        try:
            return record_report(session, service, principal, upload, analysis, given, now, detector.version)
        except OutsideJurisdiction as err:
            if sent is not None and analysis.photo.meta.position is None:  # placed by the form, not EXIF
                err.sent_as(("lat", "lon"), *sent, coord_system)
            raise

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


def read_flyers(
    finder: FlyerFinder, rules: CaseRules, analysis: Analysis, given: Given, upload: UploadedImage
) -> Analysis:
    """The flyer reader on an uploaded photo, gated and decoded as in a scan (docs/flyers.md): the
    reader asks for its own size of the photo, so the same bytes read the same whatever the door."""
    photo = analysis.photo
    full = reads_in_full(finder, rules, photo.meta.position or given.position)
    tz = rules.calendar.timezone

    def decoded(side: int) -> np.ndarray:
        return decode_photo(upload.data, source=upload.filename, local_tz=tz, reduce_to=side).image

    detections = finder.scan_photo(analysis.detections, (photo.width, photo.height), decoded, full=full)
    return replace(analysis, detections=detections)


def record_report(
    session: Session,
    service: Service,
    reporter: Principal,
    upload: UploadedImage,
    analysis: Analysis,
    given: Given,
    now: datetime,
    model_version: str,
) -> dict[str, Any]:
    """Store the photo, take it in (its findings become cases), and return the response body."""
    photo = analysis.photo
    evidence_dir = service.settings.evidence_dir
    path = image_path(evidence_dir, upload.sha256, photo.format)
    lock_intake(session)  # first statement of the transaction is a write (SQLite cannot upgrade a reader)
    intake = take_photo(
        session,
        IncomingPhoto(
            sha256=upload.sha256,
            path=str(path),
            source=PhotoSource.UPLOAD,
            meta=photo.meta,
            size=(photo.width, photo.height),
            detections=analysis.detections,
            model_version=model_version,
            given=given,
            reporter=reporter.name,
            reporter_id=reporter.user_id,
            phash=perceptual_hash(photo.image),
        ),
        service.domain.rules,
        now=now,
    )
    row = intake.photo
    refuse_outside(row, service.domain.rules)  # 422: the transaction ends, nothing of it is kept
    store_image(evidence_dir, upload.data, upload.sha256, photo.format)  # taken in: now keep the bytes
    if intake.known:
        refs = [
            CaseRef(id=c.id, number=c.number, event=c.event, state=c.state, created=False)
            for c in photo_cases(session, row)
        ]
        copy_of = copied_cases(session, row)
    else:
        refs = [
            CaseRef(
                id=update.case.id,
                number=update.case.number,
                event=update.case.event,
                state=update.case.state,
                created=update.created,
            )
            for update in intake.updates
        ]
        copy_of = list(dict.fromkeys(original.case.number for original in intake.copy_of))
    response = ReportResponse(
        photo_sha256=upload.sha256,
        status=row.status,
        taken_at=row.taken_at,
        lat=row.lat,
        lon=row.lon,
        grid_code=row.grid_code,
        unlocated=row.status == PhotoStatus.UNLOCATED,
        undated=row.status == PhotoStatus.UNDATED,
        warnings=list(photo.meta.warnings),
        model_version=model_version,
        detections=detections_out(analysis.detections, service.domain.rules.taxonomy),
        cases=refs,
        copy_of=copy_of,
    )
    return response.model_dump(mode="json")
