"""Live cameras: frames in (`POST /v1/cameras/{id}/frames`), health and zones out (`GET /v1/cameras`).

The camera hub (serve/cases/cameras.py) is built by this router's lifespan from
`<configs_dir>/cameras.yaml`, after the app's own lifespan opened the database and loaded the
model, with each camera's saved state; it also starts the watchers of cameras marked
`pull: true` and the follower of the cameras file (an edited file is applied without a restart,
as by `POST /v1/cameras/reload`), and saves the cameras' state on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Literal

import anyio
import cv2
import numpy as np
import supervision as sv
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from pydantic import Field, TypeAdapter, ValidationError

from serve.api.deps import (
    UNTYPED,
    Admin,
    CameraId,
    DetectorDep,
    Now,
    Reader,
    Reporting,
    ServiceDep,
    one_of_each,
    refuse_other_formats,
)
from serve.api.redaction import PRIVACY_HEADER, sees_raw
from serve.api.reload import CamerasReloader, FollowingDetector
from serve.api.routers.detect import analyse, detections_out
from serve.api.schemas import TIME_EXAMPLE, DetectionOut, FrameTime, IsoTime, Schema, Time
from serve.api.state import Service
from serve.cases.cameras import (
    CameraCollector,
    CameraHub,
    FrameResult,
    LiveCamera,
    Timings,
    no_picture_since,
    open_incidents,
    picture_unchanged_since,
    stream_state,
    view_moved_since,
    view_reference_at,
    waiting_events,
    waiting_since,
)
from serve.cases.enums import PhotoStatus
from serve.cases.errors import InvalidFile, InvalidInput, NotFound, TooLarge, UnsupportedMedia, as_sent
from serve.cases.intake import Given, explaining
from serve.cases.intake import capture_time as photo_capture_time
from serve.cases.times import CaptureTimes
from serve.cases.watch import WatchPool, load_service_cameras, reload_cameras
from vision.core.imageio import MEDIA_TYPES, PhotoMeta
from vision.live.cameras import CameraConfigError, CameraRegistry, UnknownCameraError
from vision.live.stream import redact_url
from vision.live.zones import pixel_polygon

log = logging.getLogger("streetorder.cameras")

FRAME_TYPES = ("image/jpeg", "image/png")  # what cameras send (photos from people: deps.IMAGE_TYPES)
FRAME_FORMATS = frozenset(name for name, media in MEDIA_TYPES.items() if media in FRAME_TYPES)
CAPTURE_HEADER = "X-Capture-Time"
CAPTURE_FIELD = "captured_at"
_CAPTURE_TIME = TypeAdapter(IsoTime)
TimeSource = Literal["header", "form", "exif"]
_SOURCES: dict[str, TimeSource] = {CAPTURE_HEADER: "header", CAPTURE_FIELD: "form"}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service = app.state.service
    path = service.settings.configs_dir / "cameras.yaml"
    rules = service.domain.rules
    taxonomy = rules.taxonomy
    settings = service.settings
    registry = (
        load_service_cameras(path, rules, settings.cameras_max_mb)
        if path.exists()
        else CameraRegistry({}, path)
    )
    hub = CameraHub(
        registry,
        taxonomy,
        settings.evidence_dir,
        busy_budget_s=settings.camera_busy_budget_s,
        max_waiting=settings.camera_waiting_events,
    )
    await anyio.to_thread.run_sync(hub.restore, service.sessions)
    for line in await anyio.to_thread.run_sync(hub.take_spilled, service.sessions, rules):
        log.warning("%s", line)
    service.metrics.registry.register(CameraCollector(hub))
    app.state.cameras = hub
    pool = None
    if service.detector is not None:
        pool = WatchPool(hub, FollowingDetector(service), service.sessions, service.domain.rules).start()
    app.state.camera_pool = pool
    follower = CamerasReloader(
        hub, service.sessions, rules, pool, settings.cameras_reload_s, settings.cameras_max_mb
    ).start()
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(follower.stop)
        if pool is not None:
            await anyio.to_thread.run_sync(pool.stop)
        for line in await anyio.to_thread.run_sync(hub.save, service.sessions):
            log.warning("%s", line)


router = APIRouter(tags=["cameras"], lifespan=lifespan)


def get_hub(request: Request) -> CameraHub:
    hub: CameraHub = request.app.state.cameras
    return hub


HubDep = Annotated[CameraHub, Depends(get_hub)]


def live_camera(hub: CameraHub, camera_id: str) -> LiveCamera:
    try:
        return hub.get(camera_id)
    except UnknownCameraError as err:
        raise NotFound("camera", f"'{camera_id}'", f" ({err.configured})") from None


# --- schemas ------------------------------------------------------------------------------------


class TrackOut(Schema):
    tracker_id: int = Field(description="ByteTrack id on this camera (changes after a long occlusion)")
    zone: str = Field(description="zone the object stands in")
    class_name: str = Field(description="taxonomy class")
    xyxy: list[float] = Field(description="box in pixels of this frame")
    confidence: float = Field(description="detector score")
    dwell_s: float = Field(description="seconds it has stood still in the zone (kept across id switches)")


class OccupancyOut(Schema):
    zone: str = Field(description="occupancy zone")
    fraction: float = Field(description="share of the zone covered by static foreground, 0..1")
    area_m2: float | None = Field(description="covered ground area, with the camera's ground homography")
    xyxy: list[float] | None = Field(description="box around the static foreground in the zone, pixels")
    learning: bool = Field(
        description="nothing is judged: the camera is still learning its background (no history yet, or "
        "its view changed), or the frame is black"
    )


class CaseActionOut(Schema):
    kind: str = Field(description="started, evidence, cleared (after-photo) or rework")
    incident_id: int = Field(description="the violation at one place, on this camera")
    zone_id: str = Field(description="zone of the rule")
    event: str = Field(description="taxonomy event")
    source: str = Field(description="detector, or occupancy (class-free: a person confirms)")
    case_id: int | None = Field(description="case created or touched")
    case_number: str | None = Field(description="its number")
    case_state: str | None = Field(description="its state now")
    created: bool = Field(description="true when this frame opened the case")
    evidence_id: int | None = Field(description="evidence added (image at /v1/evidence/{id})")
    proposal: str | None = Field(description="check_pass / resolved (place clear) or check_fail (rework)")
    reason: str = Field(
        description="why: for rework returned or still_present; after_gap for a violation that stood "
        "min_dwell_s again after a gap in the frames longer than dwell.restart_bridge_s"
    )
    captured_at: FrameTime = Field(
        description="capture time of the frame whose event this is: an earlier frame's when its events "
        "waited for a busy database (that frame was answered 503), else this frame's"
    )


class FrameTiming(Schema):
    decode_ms: float = Field(description="decoding the upload")
    inference_ms: float = Field(description="the detector")
    rules_ms: float = Field(description="tracking, zones, dwell clocks and occupancy")
    cases_ms: float = Field(description="case intake and evidence files")


class SettledOut(Schema):
    captured_at: FrameTime = Field(description="capture time of the frame held before this one")
    applied: bool = Field(
        description="true: this frame follows it (a real gap), so it was applied first (its cases are in "
        "`cases`); false: this frame goes on from the last applied one, so its clock had jumped: dropped"
    )
    reason: str = Field(description="why it was applied or dropped")


class FrameOut(Schema):
    camera_id: str = Field(description="camera id")
    captured_at: FrameTime = Field(description="capture time of the frame")
    time_source: TimeSource = Field(
        description="where the capture time came from: the X-Capture-Time header, the form's captured_at, "
        "or the frame's EXIF DateTimeOriginal (neither given)"
    )
    late: bool = Field(
        description="at or before a frame already applied, or at the time of the frame held now: returned, "
        "counted, not applied"
    )
    held: bool = Field(
        description="more than the camera's dwell.jump_s after the last applied frame: not applied yet; "
        "the next frame applies it first if it follows it, or drops it (a clock glitch) if it goes on "
        "from the last applied frame"
    )
    hold_reason: str | None = Field(description="why the frame is held; null when it is not")
    no_picture: str | None = Field(
        default=None,
        description="the frame shows no picture: blank (black, an even no-signal screen, a covered or "
        "washed-out lens), blurred, or frozen (the very same pixels for picture.frozen_s); in order, "
        "judged by no rule (nothing found on it clears a case); null when it shows one",
    )
    view_mismatch: bool = Field(
        default=False,
        description="the frame does not show the camera's reference view (a vehicle close in front hiding "
        "most of it, or the camera turned): judged by no rule; the camera is told moved (view_moved) only "
        "once this has lasted the camera's view.moved_after_s",
    )
    view_moved: bool = Field(
        default=False,
        description="the frames have shown another view than the camera's reference for view.moved_after_s "
        "(another preset, the camera knocked to another aim): its zones lie elsewhere, so it is judged by no "
        "rule until the view comes back or the new one is accepted (POST /v1/cameras/{id}/view)",
    )
    settled: SettledOut | None = Field(
        description="the frame held before this one, applied or dropped by this one; null when none was"
    )
    width: int = Field(description="frame width in pixels")
    height: int = Field(description="frame height in pixels")
    model_version: str = Field(description="detector that analysed the frame")
    detections: list[DetectionOut] = Field(description="every detection on the frame")
    tracks: list[TrackOut] = Field(description="objects of a zone's classes standing in it, with dwell time")
    occupancy: list[OccupancyOut] = Field(description="occupancy zones: how much is covered now")
    cases: list[CaseActionOut] = Field(
        description="cases created or updated by this frame (and first by the held frame it applied)"
    )
    timing: FrameTiming = Field(description="where the time went")


class ZoneOut(Schema):
    id: str = Field(description="zone id")
    name: str = Field(description="zone name")
    rule: str = Field(description="rule preset name")
    detect: str = Field(description="objects (detector classes) or occupancy (anything new)")
    classes: list[str] = Field(description="classes of an objects rule")
    event: str | None = Field(description="event the rule files (objects: the class's own when null)")
    min_dwell_s: float = Field(description="seconds standing still before a case")
    schedule: list[str] = Field(description="local times the rule is enforced")
    polygon: list[list[float]] = Field(description="normalised image coordinates, x right, y down")


class HealthOut(Schema):
    frames: int = Field(description="frames received")
    late_frames: int = Field(description="frames older than the last applied one")
    held_frames: int = Field(
        description="frames more than dwell.jump_s after the last applied one, held for the next frame"
    )
    clock_jumps_dropped: int = Field(
        description="held frames dropped as clock glitches: the next frame went on from the last applied one"
    )
    held_frame_at: FrameTime | None = Field(
        description="capture time of the frame held now, waiting for the next one; null when none"
    )
    events: int = Field(description="incident events (started, evidence, cleared, rework)")
    events_waiting: int = Field(
        description="events kept while the database stayed busy, written first with the next frame"
    )
    events_waiting_since: FrameTime | None = Field(
        description="capture time of the oldest frame whose events wait; null when none wait"
    )
    waiting_events_dropped: int = Field(
        description="waiting events dropped beyond the limit (camera_waiting_events): 'still there' "
        "evidence first, then the newest changes"
    )
    reconnects: int = Field(description="stream reconnects (pulled cameras)")
    dropped_frames: int = Field(
        description="stream frames replaced before analysis could take them: analysis too slow"
    )
    skipped_frames: int = Field(description="stream frames left on purpose, to analyse at analyse_fps")
    fps: float = Field(description="analysed frames per second of capture time")
    last_frame_at: FrameTime | None = Field(description="capture time of the newest frame")
    last_received_at: Time | None = Field(description="when the newest frame arrived")
    width: int | None = Field(description="frame width now")
    height: int | None = Field(description="frame height now")
    stream_state: str | None = Field(
        description="connected, no_picture (connected, its frames show no picture), view_moved (connected, "
        "its frames have shown another view than its reference for view.moved_after_s), stalled, "
        "reconnecting, unreachable, ended, "
        "stopped; null: frames are pushed"
    )
    no_picture: str | None = Field(
        default=None,
        description="why the frames show no picture now: blank (black, an even no-signal screen, a covered "
        "or washed-out lens), blurred or frozen; nothing is judged and no case is cleared until the "
        "picture is back; null while there is a picture",
    )
    no_picture_since: FrameTime | None = Field(
        default=None, description="capture time of the first frame without a picture; null while there is one"
    )
    view_moved_since: FrameTime | None = Field(
        default=None,
        description="capture time of the first frame of another view than the camera's reference (another "
        "preset, knocked to another aim), once the frames have shown another view for view.moved_after_s: "
        "nothing is judged, no case is started or cleared, until the view comes back or the new one is "
        "accepted; null while it shows its reference view, or has shown another for less (a bus in front)",
    )
    view_reference_at: FrameTime | None = Field(
        default=None,
        description="capture time of the frame the reference view was taken from (refreshed at most once "
        "every view.refresh_s by a confident day frame of the same view); null until the frames have "
        "agreed for the camera's view.settle_s",
    )
    open_incidents: int = Field(description="violations present now")
    picture_unchanged_since: FrameTime | None = Field(
        default=None,
        description="capture time since which every frame has had the very same pixels, once that lasted "
        "the camera's picture.frozen_s: a live sensor never repeats its noise, so the encoder is stuck or a "
        "cached snapshot is sent, and the frames are judged by no rule (no_picture: frozen); null while "
        "the picture changes",
    )


class ViewOut(Schema):
    camera_id: str = Field(description="camera id")
    reference_at: FrameTime | None = Field(
        description="capture time of the frame taken as the reference view (the camera's newest with a "
        "picture); null: none since the start, the view its frames settle on next is taken"
    )
    note: str = Field(description="what the operator is left to do")


class ReloadOut(Schema):
    source: str = Field(description="the cameras file applied")
    added: list[str] = Field(description="cameras new in the file")
    changed: list[str] = Field(description="cameras whose settings changed: they keep their state")
    removed: list[str] = Field(description="cameras no longer in the file (their state is kept)")
    unchanged: list[str] = Field(description="cameras left as they were")


class CamerasConfigOut(Schema):
    source: str = Field(description="the cameras file in force")
    loaded_at: Time = Field(description="when it was applied")
    error: str | None = Field(
        description="why the last attempt to load an edited file failed (the file in force stays); "
        "null when the last attempt succeeded"
    )
    error_at: Time | None = Field(description="when that attempt failed")


class CameraOut(Schema):
    id: str = Field(description="camera id")
    name: str = Field(description="camera name")
    lat: float = Field(description="WGS-84 latitude")
    lon: float = Field(description="WGS-84 longitude")
    grid_code: str | None = Field(description="unit grid")
    stream: str | None = Field(description="stream URL with any password removed")
    pull: bool = Field(description="the service reads the stream itself")
    analyse_fps: float = Field(description="frames per second analysed from a stream")
    zones: list[ZoneOut] = Field(description="zones and their rules")
    health: HealthOut = Field(description="health now")


# --- helpers ------------------------------------------------------------------------------------


def camera_out(live: LiveCamera) -> CameraOut:
    camera, health = live.camera, live.health
    zones = [
        ZoneOut(
            id=z.id,
            name=z.name,
            rule=z.rule.name,
            detect=z.rule.detect,
            classes=list(z.rule.classes),
            event=z.rule.event,
            min_dwell_s=z.rule.min_dwell_s,
            schedule=[
                f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in z.rule.schedule.ranges
            ],
            polygon=[list(p) for p in z.polygon],
        )
        for z in camera.zones
    ]
    return CameraOut(
        id=camera.id,
        name=camera.name,
        lat=camera.lat,
        lon=camera.lon,
        grid_code=camera.grid_code,
        stream=redact_url(camera.stream) if camera.stream else None,
        pull=camera.pull,
        analyse_fps=camera.analyse_fps,
        zones=zones,
        health=HealthOut(
            frames=health.frames,
            late_frames=health.late_frames,
            held_frames=health.held_frames,
            clock_jumps_dropped=health.clock_jumps_dropped,
            held_frame_at=live.held.captured_at if live.held else None,
            events=health.events,
            events_waiting=waiting_events(live),
            events_waiting_since=waiting_since(live),
            waiting_events_dropped=health.waiting_dropped,
            reconnects=health.reconnects,
            dropped_frames=health.dropped_frames,
            skipped_frames=health.skipped_frames,
            fps=round(health.fps, 3),
            last_frame_at=health.last_capture,
            last_received_at=health.last_received,
            width=health.size[0] if health.size else None,
            height=health.size[1] if health.size else None,
            stream_state=stream_state(live),
            no_picture=live.rules.no_picture,
            no_picture_since=no_picture_since(live),
            view_moved_since=view_moved_since(live),
            view_reference_at=view_reference_at(live),
            open_incidents=len(open_incidents(live)),
            picture_unchanged_since=picture_unchanged_since(live),
        ),
    )


def capture_time(field: str, value: str | None, now: datetime, times: CaptureTimes) -> datetime | None:
    """The frame's capture time from `field` (the header or the form field), None when not given:
    ISO 8601 text with an offset only (a number would be read as Unix seconds or milliseconds, a
    naive time on nobody's clock), plausible by the intake's rule: a time ahead of the service's
    clock would make every later (true) frame of the camera late, and its rules stand still until then."""
    if not value:
        return None
    try:
        when = _CAPTURE_TIME.validate_python(value)
    except ValidationError:
        raise InvalidInput(
            field, f"{value!r} is not an ISO 8601 time with an offset, e.g. {TIME_EXAMPLE}"
        ) from None
    return times.check(field, when, now)


def exif_capture_time(meta: PhotoMeta, now: datetime, times: CaptureTimes) -> datetime:
    """A frame sent without a capture time: its EXIF DateTimeOriginal by the patrol photos' rule
    (serve/cases/intake.py; OffsetTimeOriginal, else the calendar's timezone), as plausible as the
    header must be. Many cameras and snapshot tools write it; a frame with none is refused (422)."""
    when = photo_capture_time(meta, Given(), times, now)
    if when is None:
        said = "".join(f"; {note}" for note in explaining(PhotoStatus.UNDATED, meta))
        raise InvalidInput(
            CAPTURE_FIELD,
            f"the capture time is required: header {CAPTURE_HEADER}, form field {CAPTURE_FIELD}, or the "
            f"frame's EXIF DateTimeOriginal; none was given, and the frame has no EXIF time{said}",
        )
    return when


async def frame_upload(
    request: Request, service: Service, header_time: str | None, now: datetime
) -> tuple[bytes, str, datetime | None, TimeSource]:
    """The frame's bytes, a name for messages, and its capture time given with it (None: the frame's
    EXIF is asked once it is decoded) and where that came from: raw image body or multipart."""
    limit = int(service.settings.max_upload_mb * 2**20)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    sent_as: str | None  # the type the frame came as (None: a part that named none)
    if content_type in FRAME_TYPES or content_type in UNTYPED:  # untyped: its bytes decide, as a photo's
        data = await request.body()
        name, field, when, sent_as = "frame", CAPTURE_HEADER, header_time, content_type
    elif content_type == "multipart/form-data":
        form = await request.form()
        one_of_each(form)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("file", "the multipart body needs the frame in a file field named 'file'")
        if upload.content_type not in FRAME_TYPES and upload.content_type not in UNTYPED:
            raise UnsupportedMedia(
                f"{as_sent(upload.filename or 'frame')}: content type {upload.content_type!r}; "
                f"send {' or '.join(FRAME_TYPES)}"
            )
        data = await upload.read(limit + 1)
        name, sent_as = upload.filename or "frame", upload.content_type
        given = form.get(CAPTURE_FIELD)
        if header_time:  # the header wins, as before
            field, when = CAPTURE_HEADER, header_time
        else:
            field, when = CAPTURE_FIELD, given if isinstance(given, str) else None
    else:
        raise UnsupportedMedia(
            f"content type {content_type!r}: send {' or '.join(FRAME_TYPES)}, or multipart/form-data"
        )
    if len(data) > limit:
        raise TooLarge(f"{as_sent(name)}: over the limit of {limit} bytes")
    untyped = sent_as in UNTYPED
    refuse_other_formats(name, sent_as, data, untyped=untyped, formats=FRAME_FORMATS)
    stated = capture_time(field, when, now, service.domain.rules.times)
    return data, name, stated, _SOURCES[field] if stated is not None else "exif"


def frame_out(
    result: FrameResult,
    detections: sv.Detections,
    service: Service,
    model_version: str,
    time_source: TimeSource,
) -> FrameOut:
    taxonomy = service.domain.rules.taxonomy
    outcome = result.outcome
    t = result.timings
    return FrameOut(
        camera_id=result.camera_id,
        captured_at=result.captured_at,
        time_source=time_source,
        late=outcome.late,
        held=result.held,
        hold_reason=result.hold_reason,
        no_picture=outcome.no_picture,
        view_mismatch=outcome.view_mismatch,
        view_moved=outcome.view_moved,
        settled=None if result.settled is None else SettledOut.model_validate(result.settled),
        width=result.size[0],
        height=result.size[1],
        model_version=model_version,
        detections=detections_out(detections, taxonomy),
        tracks=[
            TrackOut(
                tracker_id=s.tracker_id,
                zone=s.zone_id,
                class_name=taxonomy.names[s.class_id],
                xyxy=[round(float(v), 1) for v in s.box],
                confidence=round(s.confidence, 4),
                dwell_s=round(s.dwell(outcome.at), 1),
            )
            for s in outcome.stays
        ],
        occupancy=[
            OccupancyOut(
                zone=o.zone_id,
                fraction=round(o.fraction, 4),
                area_m2=None if o.area_m2 is None else round(o.area_m2, 2),
                xyxy=None if o.box is None else [round(float(v), 1) for v in o.box],
                learning=o.learning,
            )
            for o in outcome.occupancy
        ],
        cases=[CaseActionOut.model_validate(action) for action in result.actions],
        timing=FrameTiming(
            decode_ms=round(t.decode_s * 1000, 2),
            inference_ms=round(t.inference_s * 1000, 2),
            rules_ms=round(t.rules_s * 1000, 2),
            cases_ms=round(t.cases_s * 1000, 2),
        ),
    )


# --- routes -------------------------------------------------------------------------------------


@router.post(
    "/v1/cameras/{camera_id}/frames",
    response_model=FrameOut,
    summary="One camera frame: detections, tracks with dwell time, and the cases it made (scope report)",
    responses={
        503: {
            "description": "the database stayed busy: the frame was judged and its events wait with the "
            "camera (nothing is lost), written first with its next frame; Retry-After says when"
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": f"the frame as a JPEG body with header {CAPTURE_HEADER}, or multipart with "
            "a `file` field and a `captured_at` field (ISO 8601 with offset); without either, the "
            "frame's EXIF DateTimeOriginal (OffsetTimeOriginal, else the calendar's timezone)",
            "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "captured_at": {"type": "string", "format": "date-time"},
                        },
                    }
                },
            },
        }
    },
)
async def post_frame(
    camera_id: CameraId,
    request: Request,
    _: Reporting,
    service: ServiceDep,
    hub: HubDep,
    detector: DetectorDep,
    now: Now,
    x_capture_time: Annotated[
        str | None, Header(alias=CAPTURE_HEADER, description="capture time, ISO 8601 with offset")
    ] = None,
) -> FrameOut:
    live = live_camera(hub, camera_id)
    data, name, given, time_source = await frame_upload(request, service, x_capture_time, now)
    tz = service.domain.rules.calendar.timezone
    # a frame too small to show anything is refused (PhotoTooSmall): judged, its empty picture
    # would count as the place clearing (a car's case proposed checked after clear_after_s of them)
    source, min_side = f"camera {live.camera.id}: {name}", service.settings.min_photo_side
    analysis = await service.gate.run(analyse, detector, data, source, tz, min_side, FRAME_FORMATS)
    captured_at = given or exif_capture_time(analysis.photo.meta, now, service.domain.rules.times)
    service.metrics.inference.observe(analysis.inference_s)
    timings = Timings(decode_s=analysis.decode_s, inference_s=analysis.inference_s)
    try:
        result = await anyio.to_thread.run_sync(
            lambda: hub.process(
                live.camera.id,
                analysis.photo.image,
                captured_at,
                analysis.detections,
                sessions=service.sessions,
                case_rules=service.domain.rules,
                model_version=detector.version,
                received_at=now,
                timings=timings,
            )
        )
    except UnknownCameraError:  # a reload removed it while the frame was analysed: nothing applied
        raise NotFound(
            "camera", f"'{camera_id}' (removed from the cameras file while its frame was analysed)"
        ) from None
    return frame_out(result, analysis.detections, service, detector.version, time_source)


@router.get(
    "/v1/cameras", response_model=list[CameraOut], summary="Cameras, zones and health (scope cases:read)"
)
def list_cameras(_: Reader, hub: HubDep) -> list[CameraOut]:
    return [camera_out(live) for live in hub]


@router.get(
    "/v1/cameras/{camera_id}/frame.jpg",
    summary="The newest analysed frame with the zones drawn (scope cases:read; faces and plates blurred "
    "unless evidence:raw)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the frame"}},
)
def last_frame(camera_id: CameraId, principal: Reader, hub: HubDep, service: ServiceDep) -> Response:
    live = live_camera(hub, camera_id)
    if live.last_frame is None:
        raise NotFound("frame of camera", f"'{camera_id}' (none analysed yet)")
    raw = sees_raw(principal)
    image = live.last_frame.copy() if raw else service.renders.blurred(live.last_frame)
    size = (image.shape[1], image.shape[0])
    for zone in live.camera.zones:
        colour = (0, 200, 255) if zone.rule.detect == "occupancy" else (60, 220, 60)
        points = pixel_polygon(zone.polygon, size).astype(np.int32)
        cv2.polylines(image, [points], True, colour, max(2, size[0] // 400))
        cv2.putText(image, zone.id, tuple(points[0]), cv2.FONT_HERSHEY_SIMPLEX, size[0] / 1600, colour, 2)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise InvalidInput("frame", "cannot encode the frame")
    return Response(
        encoded.tobytes(), media_type="image/jpeg", headers={PRIVACY_HEADER: "raw" if raw else "redacted"}
    )


@router.post(
    "/v1/cameras/{camera_id}/view",
    response_model=ViewOut,
    summary="Accept the view the camera shows now as its reference, after re-aiming it on purpose "
    "(scope admin)",
    responses={404: {"description": "no such camera"}},
)
async def accept_view(camera_id: CameraId, _: Admin, service: ServiceDep, hub: HubDep) -> ViewOut:
    live = live_camera(hub, camera_id)
    try:
        taken = await anyio.to_thread.run_sync(hub.accept_view, live.camera.id, service.sessions)
    except UnknownCameraError:  # a reload removed it meanwhile
        raise NotFound("camera", f"'{camera_id}' (removed from the cameras file)") from None
    return ViewOut(
        camera_id=live.camera.id,
        reference_at=None if taken is None else datetime.fromtimestamp(taken, UTC),
        note="its rules judge again from the next frame, on the zones drawn for the old view: redraw "
        "them on the new one in cameras.yaml (GET /v1/cameras/{id}/frame.jpg shows where they lie now)",
    )


@router.post(
    "/v1/cameras/reload",
    response_model=ReloadOut,
    summary="Apply the edited cameras file now, without a restart (scope admin)",
    responses={422: {"description": "the file does not load: the error names the file and the field"}},
)
async def reload_cameras_config(_: Admin, request: Request, service: ServiceDep, hub: HubDep) -> ReloadOut:
    pool: WatchPool | None = request.app.state.camera_pool
    try:
        summary = await anyio.to_thread.run_sync(
            reload_cameras, hub, service.sessions, service.domain.rules, pool, service.settings.cameras_max_mb
        )
    except CameraConfigError as err:
        raise InvalidFile(f"{err} (the cameras file in force stays)") from None
    return ReloadOut.model_validate({**asdict(summary), "source": str(summary.source)})


@router.get(
    "/v1/cameras/config",
    response_model=CamerasConfigOut,
    summary="The cameras file in force and the last error loading an edited one (scope cases:read)",
)
def cameras_config(_: Reader, hub: HubDep) -> CamerasConfigOut:
    config = hub.config
    return CamerasConfigOut(
        source=str(config.source), loaded_at=config.loaded_at, error=config.error, error_at=config.error_at
    )
