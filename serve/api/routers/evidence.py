"""Evidence images: upload a photo to a case (e.g. the after-photo of handling), fetch one, with
its boxes drawn on request."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Header, Query, Response, status

from serve.api.deps import CaseId, DbSession, EvidenceId, ImageUpload, Now, Reader, ServiceDep, Writer
from serve.api.redaction import PRIVACY_HEADER, sees_raw
from serve.api.routers.cases import check_if_match, evidence_out, load_case
from serve.api.schemas import EvidenceOut, IsoTime
from serve.cases.closing import AFTER_CHECK, AfterPhoto, check_after_photo, event_boxes
from serve.cases.errors import NotFound, PhotoReused
from serve.cases.evidence import evidence_file, store_image
from serve.cases.findings import lock_case
from serve.cases.intake import Given, capture_time, copies_of
from serve.cases.orm import Case, Evidence
from serve.cases.people import sees
from serve.cases.workflow import check_evidence_open
from vision.core.imageio import MEDIA_TYPES, VIEW_SIDE, decode_photo, photo_format
from vision.core.phash import perceptual_hash
from vision.core.taxonomy import Taxonomy

router = APIRouter(tags=["evidence"])


@router.post(
    "/v1/cases/{case_id}/evidence",
    response_model=EvidenceOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a photo to an open case (role after = the after-handling photo that `handle` needs)",
    responses={
        409: {
            "description": "the case is finished (closed, cancelled, not filed), or the photo "
            "is evidence of another case"
        },
        412: {"description": "If-Match (optional) names an older version of the case: nothing stored"},
    },
)
def add_evidence(
    case_id: CaseId,
    principal: Writer,
    upload: ImageUpload,
    session: DbSession,
    service: ServiceDep,
    now: Now,
    role: Annotated[
        Literal["after", "before", "near", "far", "reference"], Form(description="photo role")
    ] = "after",
    taken_at: Annotated[
        IsoTime | None,
        Form(description="when taken, ISO 8601 with offset, where the photo has no EXIF capture time"),
    ] = None,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match", description="optional: the ETag of the case page the photo's step stands on"
        ),
    ] = None,
) -> EvidenceOut:
    """The capture time is the photo intake's (EXIF, else `taken_at`). A photo with neither is kept
    with the upload time, marked `"time": "received"` in `extra`: it files no case, and a check of
    the handling must not take that time for when the photo was taken. A photo that is already
    evidence of another case (the same bytes or a near-identical image) is refused (409, naming it),
    and so is any photo for a finished case (409 naming its state), before anything is stored: the
    state is read again, the case held, once the model is done (a cancel or close that came in
    meanwhile left the photo on the finished record). With If-Match, a case changed since that
    version is refused (412) before anything is stored: the step the photo is for would be refused
    by the same ETag, and its photo would stay on the case as an after-photo no handling stood on."""
    case = load_case(session, case_id, principal)
    check_evidence_open(case)
    if if_match is not None:
        check_if_match(if_match, case)
    local_tz = service.domain.rules.calendar.timezone
    photo = service.gate.run_blocking(
        partial(
            decode_photo,
            source=upload.filename,
            local_tz=local_tz,
            reduce_to=VIEW_SIDE,
            min_side=service.settings.min_photo_side,
        ),
        upload.data,
    )
    phash = perceptual_hash(photo.image)
    copies = copies_of(session, upload.sha256, phash)
    if copies and all(copy.case_id != case_id for copy in copies):  # one photo may show two events
        raise PhotoReused(copies[0].case.number, copies[0].id, copies[0].case_id)
    captured_at = capture_time(photo.meta, Given(taken_at=taken_at), service.domain.rules.times, now)
    extra: dict[str, Any] = {} if captured_at else {"time": "received"}
    numbers = flyer_numbers(case, service.domain.rules.taxonomy) if role == "after" else []
    if numbers and service.flyers is not None:
        extra["flyer_check"] = service.gate.run_blocking(service.flyers.check_after, photo.image, numbers)
    if role == "after":
        found = None
        if service.detector is not None:
            detections = service.gate.run_blocking(service.detector, photo.image)
            found = event_boxes(detections, case.event, service.domain.rules.taxonomy)
        after = AfterPhoto(
            sha256=upload.sha256,
            phash=phash,
            taken_at=captured_at,
            position=photo.meta.position,
            camera_id=None,
            found=found,
            flyer_check=extra.get("flyer_check"),
        )
        extra[AFTER_CHECK] = check_after_photo(case, after, service.settings.after_photo_radius_m, local_tz)
    lock_case(session, case)  # the model took its time: a step may have finished the case meanwhile
    check_evidence_open(case)
    if if_match is not None:
        check_if_match(if_match, case)
    path = store_image(service.settings.evidence_dir, upload.data, upload.sha256, photo.format)
    evidence = Evidence(
        case_id=case_id,
        role=role,
        path=str(path),
        sha256=upload.sha256,
        phash=phash,
        captured_at=captured_at or now,
        boxes=[],
        extra=extra or None,
    )
    session.add(evidence)
    session.commit()
    return evidence_out(evidence)


def flyer_numbers(case: Case, taxonomy: Taxonomy) -> list[str]:
    """The phone numbers read on a flyer case's findings (Evidence.extra["flyers"]), each once."""
    flyer_events = {c.event for c in taxonomy.classes if c.name == "flyer"}
    if case.event not in flyer_events:
        return []
    numbers = [
        number
        for evidence in case.evidence
        for flyer in (evidence.extra or {}).get("flyers", [])
        for number in flyer.get("phones", [])
    ]
    return list(dict.fromkeys(numbers))


@router.get(
    "/v1/evidence/{evidence_id}",
    summary="An evidence image (boxes=true draws the boxes that made it evidence); faces and plates "
    "blurred unless the key has scope evidence:raw",
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "the image"}},
)
def get_evidence(
    evidence_id: EvidenceId,
    principal: Reader,
    session: DbSession,
    service: ServiceDep,
    boxes: Annotated[bool, Query(description="draw the evidence boxes with class and score")] = False,
) -> Response:
    evidence = session.get(Evidence, evidence_id)
    if evidence is None or not sees(principal, evidence.case):
        raise NotFound("evidence", evidence_id)
    path = evidence_file(service.settings.evidence_dir, evidence.path, evidence.sha256)
    raw = sees_raw(principal)
    privacy = {PRIVACY_HEADER: "raw" if raw else "redacted"}
    if not boxes and raw:
        data = path.read_bytes()
        media_type = MEDIA_TYPES.get(photo_format(data) or "", "application/octet-stream")
        return Response(data, media_type=media_type, headers=privacy)
    if not boxes:
        data = service.renders.redacted(path, evidence.sha256)
        return Response(data, media_type="image/jpeg", headers=privacy)
    data = service.renders.with_boxes(path, evidence, raw, service.domain.rules.taxonomy.names)
    return Response(data, media_type="image/jpeg", headers=privacy)
