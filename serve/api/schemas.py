"""The API's request and response bodies (pydantic), separate from the ORM rows they are built from.

Every field carries a description: the OpenAPI document is the contract the web console, Open311
bridges and bureau systems are written against.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, tzinfo
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from serve.cases.auth import MAX_NAME_LENGTH, MAX_RATE_PER_MIN
from serve.cases.coords import CoordSystem
from serve.cases.enums import (
    AiReview,
    CaseSource,
    EvidenceRole,
    ExtensionState,
    PhotoStatus,
    RecordType,
    Role,
    State,
)
from serve.cases.times import computable, computable_day
from serve.cases.workflow import Action

MAX_ID = 2**63 - 1  # the largest row id SQLite and PostgreSQL can hold: larger ids are 422, not 500
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")  # how an ISO 8601 date and time begins
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME_EXAMPLE = "2026-05-06T09:30:00+08:00"
COORD_SYSTEM_HELP = (
    "coordinate system of the position sent: wgs84 (GPS, EXIF), gcj02 (AMap, Tencent maps, WeChat "
    "wx.getLocation type 'gcj02') or bd09 (Baidu maps); converted, the case keeps WGS-84"
)


def iso_time(value: Any) -> Any:
    """Only ISO 8601 text (or a datetime built in code) goes on to pydantic's parser, which would read
    a number or a string of digits as Unix seconds, or milliseconds beyond 2e10: a client sending
    one unit for the other got a date days or decades off, silently."""
    if isinstance(value, datetime) or (isinstance(value, str) and ISO_TIME.match(value)):
        return value
    raise ValueError(f"{value!r} is not an ISO 8601 time with an offset, e.g. {TIME_EXAMPLE}")


def iso_day(value: Any) -> Any:
    """Only an ISO 8601 day (YYYY-MM-DD), as `iso_time` (pydantic took 1733443200 as 2024-12-06)."""
    if isinstance(value, date) or (isinstance(value, str) and ISO_DAY.fullmatch(value)):
        return value
    raise ValueError(f"{value!r} is not an ISO 8601 day, e.g. 2026-05-06")


# A time a request gives: ISO 8601 text with its offset (a naive time is refused: whose clock?).
IsoTime = Annotated[AwareDatetime, BeforeValidator(iso_time)]
# Every time and day a request names: within the years the service can compute with (422 outside).
Instant = Annotated[IsoTime, AfterValidator(computable)]
Day = Annotated[date, BeforeValidator(iso_day), AfterValidator(computable_day)]

# Every time the API answers, one convention: ISO 8601 with the bureau's own UTC offset (the calendar's
# timezone, configs/calendar.yaml), as GeoReport v2 asks, to the second. Inputs take any offset.
_BUREAU_TZ: ContextVar[tzinfo | None] = ContextVar("bureau_tz", default=None)


@contextmanager
def bureau_timezone(tz: tzinfo) -> Iterator[None]:
    """Answer the times of the request handled inside in `tz` (the app sets it for each request)."""
    token = _BUREAU_TZ.set(tz)
    try:
        yield
    finally:
        _BUREAU_TZ.reset(token)


def _iso(moment: datetime, timespec: str) -> str:
    tz = _BUREAU_TZ.get()
    return (moment.astimezone(tz) if tz is not None else moment).isoformat(timespec=timespec)


def bureau_time(moment: datetime) -> str:
    """`2025-09-30T10:30:00+08:00`: the bureau's wall clock and offset, to the second."""
    return _iso(moment, "seconds")


def frame_time(moment: datetime) -> str:
    """A camera frame's capture time, to the millisecond: frames come several a second, and a
    client tells a late or held frame by it."""
    return _iso(moment, "milliseconds")


_AS_TIME = WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization")
Time = Annotated[datetime, PlainSerializer(bureau_time, return_type=str), _AS_TIME]
FrameTime = Annotated[datetime, PlainSerializer(frame_time, return_type=str), _AS_TIME]


class Schema(BaseModel):
    # NaN and Infinity are no numbers a request can mean: 422, never a deadline in year 7345
    model_config = ConfigDict(from_attributes=True, allow_inf_nan=False)


class RequestBody(Schema):
    """A JSON body a client sends. A member no field has is a 422 naming it, not ignored: a typo
    (`dept` for `department`) would otherwise dispatch to the routing rules' department unsaid."""

    model_config = ConfigDict(from_attributes=True, allow_inf_nan=False, extra="forbid")


# --- errors -----------------------------------------------------------------------------------


class Problem(Schema):
    """An RFC 9457 problem document (`application/problem+json`), the body of every error outside
    /open311; serve/api/problems.py writes it. Some errors add members a client acts on:
    `current_etag` (412), `allowed_actions` (409 of a refused action), `required_scope` (403),
    `incident` (500)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(default="about:blank", description="always about:blank: `title` and `status` say it")
    title: str = Field(description="what went wrong, in a few words (`not found`, `precondition failed`)")
    status: int = Field(description="the HTTP status, repeated")
    detail: str = Field(description="what went wrong with this request, and what to do about it")


class FieldError(Schema):
    loc: list[str] = Field(
        description="where the bad value is: `body`, `query`, `path` or `header`, then its name"
    )
    msg: str = Field(description="what is wrong with it")
    type: str = Field(description="pydantic's error type (`missing`, `greater_than_equal` ...)")


class ValidationProblem(Problem):
    """The 422 of a request whose fields do not validate: a problem document listing each bad field."""

    errors: list[FieldError] = Field(
        default=[], description="each bad field (empty for a refusal of the rules)"
    )


class GeoReportError(Schema):
    """One entry of GeoReport v2's error list, the body of every error under /open311 (400 = bad input)."""

    code: int = Field(description="the HTTP status")
    description: str = Field(description="what went wrong")


# --- detections -------------------------------------------------------------------------------


class DetectionOut(Schema):
    xyxy: list[float] = Field(
        description="box in pixels of the uploaded image (after EXIF rotation): x1, y1, x2, y2"
    )
    class_id: int = Field(description="taxonomy class index (configs/taxonomy.yaml `classes`)")
    class_name: str = Field(description="taxonomy class name")
    confidence: float = Field(description="detector score, 0..1")
    event: str | None = Field(description="event key this class becomes, or null for context classes")
    finding: bool = Field(
        description="true when the score reaches the class's min_confidence and it has an event"
    )


class Timing(Schema):
    decode_ms: float = Field(description="reading and decoding the upload")
    inference_ms: float = Field(description="running the detector (without queueing)")
    total_ms: float = Field(description="whole request handling inside the service")


class DetectResponse(Schema):
    width: int = Field(description="image width in pixels, after EXIF orientation")
    height: int = Field(description="image height in pixels, after EXIF orientation")
    model_version: str = Field(description="model name @ first 12 hex of its weights' sha256")
    detections: list[DetectionOut] = Field(description="every detection above the detector's floor")
    timing: Timing = Field(description="where the time went")


class CaseRef(Schema):
    id: int = Field(description="case id (use in /v1/cases/{id})")
    number: str = Field(description="case number (案卷号): prefix + yyyyMMdd + sequence")
    event: str = Field(description="event key")
    state: State = Field(description="workflow state")
    created: bool = Field(
        description="true when this report opened the case, false when it joined an open one"
    )


class ReportResponse(Schema):
    photo_sha256: str = Field(
        description="sha256 of the uploaded bytes: the photo's identity; the same bytes sent again "
        "answer what they gave the first time (unless they bring the position or time it lacked)"
    )
    status: PhotoStatus = Field(
        description="done (cases filed), unlocated (no position) or undated (no capture time)"
    )
    taken_at: Time | None = Field(
        description="when the photo was taken: EXIF, else the form field; null when neither says"
    )
    lat: float | None = Field(description="WGS-84 latitude used: EXIF GPS, else the form field")
    lon: float | None = Field(description="WGS-84 longitude used: EXIF GPS, else the form field")
    grid_code: str | None = Field(description="unit grid holding the position, null outside every grid")
    unlocated: bool = Field(description="true when no position was given or found: no case can be made")
    undated: bool = Field(
        description="true when located but no capture time was given or found: no case is made (send "
        "the photo again with taken_at)"
    )
    warnings: list[str] = Field(
        default=[],
        description="what the photo's own metadata said that was not used, and why (GPS at (0, 0) or "
        "out of range, a damaged EXIF block, an unreadable EXIF time): why a photo with GPS can come back "
        "unlocated",
    )
    model_version: str = Field(description="model that produced the detections")
    detections: list[DetectionOut] = Field(description="every detection on the photo")
    cases: list[CaseRef] = Field(description="cases created or joined by this photo's findings")
    copy_of: list[str] = Field(
        default=[],
        description="numbers of the cases this photo (the same bytes or a near-identical image, "
        "whatever position and time it claims) was already evidence of: it joined those still open (a "
        "finished case's evidence is its record), no case was opened",
    )


# --- cases ------------------------------------------------------------------------------------


class CaseSummary(Schema):
    id: int = Field(description="case id")
    number: str = Field(description="case number (案卷号)")
    state: State = Field(description="workflow state (see serve/cases/workflow.py)")
    event: str = Field(description="event key (configs/taxonomy.yaml `events`)")
    major: str = Field(description="CJ/T 214 major class")
    cjt214: str = Field(description="CJ/T 214-2007 event code ('local' where it has none)")
    gbt47678: str = Field(description="GB/T 47678.5-2026 event code")
    source: CaseSource = Field(description="where the problem came from (问题来源)")
    record_type: RecordType = Field(description="event (事件) or component (部件)")
    lat: float = Field(description="WGS-84 latitude")
    lon: float = Field(description="WGS-84 longitude")
    address: str | None = Field(description="address or position description")
    grid_code: str | None = Field(description="15-digit unit grid code (legacy 14 kept as given)")
    street: str | None = Field(description="street (街道) of the grid")
    community: str | None = Field(description="community (社区) of the grid")
    department: str | None = Field(description="responsible department, set when dispatched")
    ai_review: AiReview | None = Field(description="AI match review; null for findings made by people")
    auto_filed: bool = Field(
        description="filed without a person's review: its class is trusted (configs/workflow.yaml auto_file)"
    )
    camera_id: str | None = Field(description="camera that saw it, for video cases")
    filed_at: Time = Field(description="when the problem was seen (photo or frame time)")
    deadline_at: Time | None = Field(
        description="disposal deadline: counted from filing (立案), again from dispatch; null in review"
    )
    on_site_due_at: Time | None = Field(
        default=None, description="双十 classes: someone on site by then (the `start` step), from filing"
    )
    first_seen_at: Time = Field(description="first evidence time")
    last_seen_at: Time = Field(description="latest evidence time")
    closed_at: Time | None = Field(description="when it reached a final state")
    overdue: bool = Field(
        description="filed, still open and past its deadline at the time asked (`as_of`, else now)"
    )
    version: int = Field(description="version of the record; the ETag of GET /v1/cases/{id}")


class BoxOut(Schema):
    xyxy: list[float] = Field(description="pixels of the upright photo: x1, y1, x2, y2")
    confidence: float = Field(description="detector score, 0..1")
    class_name: str = Field(alias="class", description="taxonomy class name (occupancy: class-free)")


class EvidenceOut(Schema):
    id: int = Field(description="evidence id (image at /v1/evidence/{id})")
    role: EvidenceRole = Field(
        description="near, far, reference, before or after (处置后); finding: found on it"
    )
    sha256: str = Field(description="sha256 of the image file")
    captured_at: Time = Field(description="when the image was taken")
    boxes: list[BoxOut] = Field(description="boxes that made it evidence")
    confidence: float | None = Field(description="best detector score among the boxes")
    model_version: str | None = Field(description="model that found it, null for uploads by people")
    extra: dict[str, Any] | None = Field(description="extra facts, e.g. OCR text and phone numbers of flyers")
    url: str = Field(description="path of the image in this API")


class FlowOut(Schema):
    action: str = Field(
        description="workflow action; `report`: the finding or request that opened the case; `detach`, "
        "`split`, `merge`: the case's evidence regrouped by a person (the state stays)"
    )
    from_state: State | None = Field(description="state before")
    to_state: State = Field(description="state after")
    operator: str = Field(
        description="who did it: the signed-in person, an API key's name, or the operator a key names"
    )
    user_id: int | None = Field(default=None, description="the signed-in person's user id; null for API keys")
    at: Time = Field(description="when it happened")
    seconds_used: float | None = Field(description="seconds since the previous step: the time this node took")
    overdue: bool = Field(description="late against its stage limit, or past the deadline for handle/close")
    note: str | None = Field(description="reason or remark")


class ExtensionOut(Schema):
    id: int = Field(description="request id")
    case_id: int = Field(description="the case")
    extend_by: float = Field(description="more time asked, in the unit of the class's limit")
    note: str = Field(description="why")
    requested_by: str = Field(description="who asked")
    requester_role: str | None = Field(description="their role; null for an API key")
    requested_at: Time = Field(description="when")
    state: ExtensionState = Field(description="pending, approved or refused")
    decided_by: str | None = Field(description="who decided (another person, of another role)")
    decided_at: Time | None = Field(description="when decided")
    decision_note: str | None = Field(description="the decider's remark")


class ExtensionIn(RequestBody):
    extend_by: float = Field(gt=0, le=1000, description="more time, in the unit of the class's limit")
    note: str = Field(min_length=1, max_length=4000, description="why more time is needed")


class DetachIn(RequestBody):
    reason: str = Field(
        min_length=1, max_length=2000, description="why the photo is not evidence of this case"
    )


class SplitIn(RequestBody):
    evidence_ids: list[int] = Field(
        min_length=1, max_length=1000, description="evidence of this case that shows another problem"
    )
    reason: str = Field(min_length=1, max_length=2000, description="why they are another case")


class MergeIn(RequestBody):
    case_id: int = Field(
        ge=1,
        le=MAX_ID,
        description="the case (same event) whose evidence moves in; it is cancelled as merged",
    )
    reason: str = Field(min_length=1, max_length=2000, description="why both are one problem")


class DecisionIn(RequestBody):
    approve: bool = Field(description="true: the deadline moves at once; false: it stays")
    note: str | None = Field(default=None, max_length=4000, description="remark")


class NavigationOut(Schema):
    """Links opening the case's place in navigation apps, each in the app's own coordinate system."""

    amap: str = Field(description="AMap marker (uri.amap.com), the position in GCJ-02 (coordinate=gaode)")
    baidu: str = Field(
        description="Baidu marker (api.map.baidu.com), the position in BD-09 (coord_type=bd09ll)"
    )
    geo: str = Field(description="geo: URI (RFC 5870) for the phone's own maps, WGS-84")


class CaseDetail(CaseSummary):
    description: str = Field(description="free text description")
    navigation: NavigationOut = Field(
        description="the place in AMap, Baidu and the phone's maps "
        "(WGS-84 typed into AMap or Baidu is 300-700 m off)"
    )
    evidence: list[EvidenceOut] = Field(description="photos of the case, oldest first")
    flow: list[FlowOut] = Field(description="the flow log (流转记录), oldest first")
    allowed_actions: list[str] = Field(
        description="actions POST /v1/cases/{id}/transitions accepts now, from this caller (a person's role)"
    )
    evidence_actions: list[str] = Field(
        default=[],
        description="detach, split, merge: the evidence changes this caller may make now (an open case)",
    )
    extensions: list[ExtensionOut] = Field(
        default=[], description="extension requests (延期申请), oldest first"
    )
    suggested_department: str = Field(description="department the routing rules give for this case")


class CaseQuery(BaseModel):
    """Filters of GET /v1/cases and /v1/cases.geojson (all optional, combined with AND)."""

    state: list[State] = Field(default=[], description="workflow states (repeat the parameter for several)")
    event: list[str] = Field(default=[], description="event keys (repeat for several; GET /v1/events)")
    grid: str | None = Field(  # digits only and bounded: SQLite refuses a LIKE pattern over 50,000 bytes
        None,
        pattern=r"^[0-9]{0,15}$",  # empty: no filter, as before
        description="unit grid code, or a prefix: 9 digits = a street, 12 = a community",
    )
    street: str | None = Field(default=None, description="street name as in the grid layout")
    department: str | None = Field(default=None, description="responsible department")
    since: Instant | Day | None = Field(
        default=None, description="first seen at or after (ISO 8601; a day: its start, bureau time)"
    )
    until: Instant | Day | None = Field(
        default=None, description="first seen before (ISO 8601; a day: its start, bureau time)"
    )
    overdue: bool | None = Field(default=None, description="true: open and past deadline at `as_of`")
    as_of: Instant | None = Field(default=None, description="when `overdue` is judged; default now")
    limit: int = Field(default=50, ge=1, le=1000, description="page size (GeoJSON: most features returned)")
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page")


MAP_CRS_HELP = (
    "coordinate system of the geometry returned: wgs84 (default), gcj02 (to draw on AMap or Tencent "
    "tiles) or bd09 (Baidu); the data stays WGS-84, this is only how it is drawn"
)


class CaseMapQuery(CaseQuery):
    """The filters of /v1/cases.geojson, and the coordinate system of the map that draws it."""

    crs: CoordSystem = Field(default="wgs84", description=MAP_CRS_HELP)


class CasePage(Schema):
    items: list[CaseSummary] = Field(description="cases, newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")
    total: int = Field(description="cases matching the filters, on all pages")
    by_state: dict[str, int] = Field(description="cases matching the filters, per workflow state")


class NamedCrs(Schema):
    """GeoJSON's legacy `crs` member, present only for points in a Chinese map system."""

    type: Literal["name"] = Field(description="always `name`")
    properties: dict[str, str] = Field(description="`name`: gcj02 or bd09")


class PointGeometry(Schema):
    type: Literal["Point"] = Field(description="always `Point`")
    coordinates: list[float] = Field(min_length=2, max_length=2, description="[longitude, latitude] in `crs`")


class CaseFeature(Schema):
    type: Literal["Feature"] = Field(description="always `Feature`")
    id: int = Field(description="case id")
    geometry: PointGeometry = Field(description="where the case is, in the collection's `crs`")
    properties: CaseSummary = Field(description="the case as GET /v1/cases lists it (lat/lon: WGS-84)")


class CaseFeatures(Schema):
    """`GET /v1/cases.geojson`: documented here, built as a dict by the route."""

    type: Literal["FeatureCollection"] = Field(description="always `FeatureCollection`")
    features: list[CaseFeature] = Field(description="the cases, newest first")
    crs: NamedCrs | None = Field(default=None, description="absent for WGS-84, GeoJSON's own")


class GridProperties(Schema):
    code: str = Field(description="15-digit unit grid code")
    name: str = Field(description="grid name")
    street: str | None = Field(description="street (街道)")
    community: str | None = Field(description="community (社区)")
    area_km2: float = Field(description="area in km²")
    open_cases: int = Field(description="cases open in the grid now")
    open_per_km2: float | None = Field(description="open cases per km²; null for a grid without area")


class GridGeometry(Schema):
    type: Literal["Polygon", "MultiPolygon"] = Field(description="GeoJSON geometry type")
    coordinates: list[Any] = Field(description="GeoJSON rings, [longitude, latitude] in `crs`")


class GridFeature(Schema):
    type: Literal["Feature"] = Field(description="always `Feature`")
    id: str = Field(description="unit grid code")
    geometry: GridGeometry = Field(description="the grid's outline")
    properties: GridProperties = Field(description="the grid and its open cases")


class GridFeatures(Schema):
    """`GET /v1/grids.geojson`: documented here, built as a dict by the route."""

    type: Literal["FeatureCollection"] = Field(description="always `FeatureCollection`")
    features: list[GridFeature] = Field(description="the unit grids")
    crs: NamedCrs | None = Field(default=None, description="absent for WGS-84, GeoJSON's own")


class TransitionIn(RequestBody):
    action: Action = Field(description="what to do; GET /v1/cases/{id} lists the actions allowed now")
    at: Instant | None = Field(
        None,
        description="when it was done (e.g. offline field work); default: when the request arrives; "
        "never in the future nor before the case's last step",
    )
    operator: str | None = Field(
        None,
        max_length=64,
        description="person acting, for API keys of systems that act for people; default: the key's name. "
        "A signed-in person always acts under their own name",
    )
    note: str | None = Field(
        None,
        max_length=4000,
        description="reason or remark; required to reject, fail a check, suspend, cancel or force close",
    )
    department: str | None = Field(
        default=None, description="dispatch: department (default: by the routing rules)"
    )
    event: str | None = Field(default=None, description="correct: the right event key")
    evidence_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="handle: the after-photo, uploaded to /v1/cases/{id}/evidence"
    )
    extend_by: float | None = Field(
        None,
        gt=0,
        description="extend: more time, in the unit of the class's limit; at most the configured "
        "maximum (STREETORDER_MAX_EXTEND_DAYS days, in that unit)",
    )
    override_reason: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="handle / check_pass: why a person accepts an after-photo that failed its check "
        "(evidence extra.after_check); kept in the flow log",
    )


class EventOut(Schema):
    key: str = Field(description="event key, as in cases' `event` (configs/taxonomy.yaml `events`)")
    name: str = Field(description="English name")
    name_zh: str = Field(description="Chinese name")
    disorder: str = Field(description="which of the four disorders: garbage, parking, vending or ads")
    record_type: str = Field(description="event (事件) or component (部件)")
    major: str = Field(description="CJ/T 214 major class")
    cjt214: str = Field(description="CJ/T 214-2007 code ('local' where it has none)")
    gbt47678: str = Field(description="GB/T 47678.5-2026 code")
    limit: float = Field(description="disposal limit, in `unit`")
    unit: str = Field(description="unit of the limit: minutes, hours, working_hours, working_days or days")
    on_site_minutes: float | None = Field(
        default=None, description="双十: minutes from filing within which someone must be on site"
    )


class DepartmentsOut(Schema):
    departments: list[str] = Field(description="departments a case may be dispatched to")
    default: str = Field(description="department used when no rule matches")


# --- stats ------------------------------------------------------------------------------------


class Rates(Schema):
    reports: int = Field(description="cases reported in the period (any source), filed or not")
    pending_review: int = Field(description="reports awaiting a person's review (reported)")
    valid: int = Field(description="reports confirmed or corrected by a person, or auto-filed (有效上报)")
    rejected: int = Field(
        description="reports rejected as false (不予立案) unconfirmed: a confirmed one stays valid"
    )
    filed: int = Field(description="cases filed (立案): only these count as problems")
    missed: int = Field(
        description="filed cases first reported by the public, hotline, leaders or media (漏报)"
    )
    due: int = Field(description="cases dispatched and not cancelled: due for handling (应处置)")
    handled: int = Field(description="due cases reported handled")
    handled_on_time: int = Field(
        description="due cases whose accepted handling (no failed check since it) met the deadline"
    )
    closed: int = Field(description="due cases closed (结案, forced close included)")
    closed_on_time: int = Field(description="due cases closed by the deadline")
    reworked: int = Field(description="handled cases sent back at least once by a failed check (返工)")
    valid_report_rate: float | None = Field(description="有效上报率 = valid / (valid + rejected)")
    miss_rate: float | None = Field(description="漏报率 = missed / filed")
    filing_rate: float | None = Field(description="立案率 = filed / valid")
    disposal_rate: float | None = Field(description="处置率 = handled / due")
    on_time_disposal_rate: float | None = Field(description="按期处置率 = handled on time / due")
    closing_rate: float | None = Field(description="结案率 = closed / due")
    on_time_closing_rate: float | None = Field(description="按期结案率 = closed on time / due")
    rework_rate: float | None = Field(description="返工率 = reworked / handled")
    overtime_cases: int = Field(description="cases whose accepted handling was late against their limit")
    overtime_multiple_mean: float | None = Field(
        description="mean 超时倍数 (used − limit) / limit of late cases"
    )
    overtime_multiple_max: float | None = Field(description="largest 超时倍数")
    area_km2: float | None = Field(description="area of the group's unit grids (grid and street groups)")
    problems_per_km2: float | None = Field(description="problems (filed cases not cancelled) per km²")
    score: float | None = Field(description="weighted composite of the rates (weights in configs/stats.yaml)")


class GroupRates(Rates):
    key: str | None = Field(description="the group: grid code, street, department or event; null = not set")


class StatsOut(Schema):
    since: Time | None = Field(description="start of the period (report time), inclusive")
    until: Time | None = Field(description="end of the period, exclusive")
    group_by: str | None = Field(description="grouping asked for")
    total: Rates = Field(description="all cases of the period")
    groups: list[GroupRates] = Field(description="one row per group, by key")


class RankingRow(Schema):
    rank: int = Field(description="1 = worst (most problems per km²)")
    street: str = Field(description="street (街道)")
    problems: int = Field(description="problems (filed cases not cancelled) first seen in the period")
    area_km2: float = Field(description="area of the street's unit grids")
    problems_per_km2: float = Field(description="problems per km²")
    on_time_closing_rate: float | None = Field(description="按期结案率 of the street's due cases")
    score: float | None = Field(description="weighted composite score")


class RankingOut(Schema):
    period: str = Field(
        description="the 10-day period (旬): YYYY-MM-1 (days 1-10), -2 (11-20) or -3 (21-end)"
    )
    since: Time = Field(description="start of the period (bureau time), inclusive")
    until: Time = Field(description="end, exclusive")
    streets: list[RankingRow] = Field(description="streets, worst first")


class EventSeries(Schema):
    event: str = Field(description="event key")
    counts: list[int] = Field(description="cases first reported on each day of `days`")


class DailyOut(Schema):
    since: date = Field(description="first day (bureau calendar), inclusive")
    until: date = Field(description="last day, exclusive")
    days: list[date] = Field(description="the days counted, oldest first")
    events: list[EventSeries] = Field(description="one series per event class with a case in the period")


class WorstSpot(Schema):
    grid_code: str = Field(description="unit grid")
    street: str | None = Field(description="its street")
    open_cases: int = Field(description="filed cases open now (reports in review not counted)")
    area_km2: float | None = Field(description="grid area")
    open_per_km2: float | None = Field(description="open cases per km²")
    department: str | None = Field(
        description="the department all its open cases go to (dispatched to, else as routing suggests); "
        "null where they differ"
    )


class WorstSpotsOut(Schema):
    as_of: Time = Field(description="when the open cases were counted")
    spots: list[WorstSpot] = Field(description="grids with the most open cases per km², worst first")


# --- keys and health --------------------------------------------------------------------------


# a key's own rate: a JSON integer (strict: "600", 600.5, true and NaN are 422, not read as a number)
KeyRate = Annotated[
    int | None,
    Field(
        strict=True,
        ge=1,
        le=MAX_RATE_PER_MIN,
        description="the key's own rate, requests a minute; null: the rate of its scopes "
        "(STREETORDER_KEY_RATE_PER_MIN, STREETORDER_KEY_RATE_PER_MIN_BY_SCOPE)",
    ),
]


class KeyIn(RequestBody):
    name: str = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, description="who or what uses the key (shown in flow logs)"
    )
    scopes: list[Literal["detect", "report", "cases:read", "cases:write", "evidence:raw", "admin"]] = Field(
        min_length=1, description="what the key may do"
    )
    rate_per_min: KeyRate = None


class KeyChange(RequestBody):
    """A key's new rate; the member is required, so that `{}` is an error, not a silent reset."""

    rate_per_min: KeyRate


class KeyOut(Schema):
    key_id: str = Field(description="public id of the key")
    name: str = Field(description="name given at creation")
    scopes: list[str] = Field(description="granted scopes")
    rate_per_min: int | None = Field(description="the key's own rate a minute; null: its scopes'")
    created_at: Time = Field(description="creation time")
    revoked_at: Time | None = Field(description="revocation time, null while valid")


class NewKeyOut(KeyOut):
    key: str = Field(description="the key itself: shown this once, only its hash is kept")


class Health(Schema):
    status: str = Field(description="ok, or what is not ready")
    model_version: str | None = Field(default=None, description="loaded model")
    database: str | None = Field(default=None, description="database backend")
    calendar: str | None = Field(
        default=None,
        description="the working calendar's coverage: the last year it lists, or what to add before "
        "deadlines run past it (a warning; readiness does not depend on it)",
    )


# --- Open311 GeoReport v2 -----------------------------------------------------------------------


class Open311Service(Schema):
    service_code: str = Field(description="event code (GB/T 47678.5)")
    service_name: str = Field(description="event name, Chinese and English")
    description: str = Field(description="what the service is for, with the CJ/T 214 code")
    metadata: bool = Field(description="always false: no extra attributes are asked")
    type: str = Field(description="realtime: a request with a place becomes a case at once")
    keywords: str = Field(description="comma-separated search words")
    group: str = Field(description="the disorder: garbage, parking, vending or ads")


class Open311Attribute(Schema):
    variable: bool = Field(description="true: the citizen enters it")
    code: str = Field(description="attribute[code] in POST requests")
    datatype: str = Field(description="string, number, datetime, text, singlevaluelist, multivaluelist")
    required: bool = Field(description="whether a request needs it")
    datatype_description: str | None = Field(description="how to write the value")
    order: int = Field(description="position in a form")
    description: str = Field(description="the question asked")


class Open311ServiceDefinition(Schema):
    service_code: str = Field(description="event code (GB/T 47678.5)")
    attributes: list[Open311Attribute] = Field(
        description="none: services ask nothing beyond GeoReport's fields"
    )


class Open311Endpoint(Schema):
    specification: str = Field(description="the GeoReport v2 specification's address")
    url: str = Field(description="base URL of the GeoReport v2 methods")
    changeset: str = Field(description="when this endpoint last changed, ISO 8601")
    type: str = Field(description="production")
    formats: list[str] = Field(description="text/xml and application/json")


class Open311Discovery(Schema):
    changeset: str = Field(description="when this document last changed, ISO 8601")
    contact: str = Field(description="who runs the service")
    key_service: str = Field(description="where a reporting system gets an api_key")
    endpoints: list[Open311Endpoint] = Field(description="the GeoReport v2 endpoint of this service")


class Open311Request(Schema):
    service_request_id: str = Field(description="case number (案卷号)")
    status: Literal["open", "closed"] = Field(description="closed only once the case reached a final state")
    status_notes: str | None = Field(description="the case's state and its latest remark, in plain Chinese")
    service_name: str = Field(description="event name")
    service_code: str = Field(description="event code (GB/T 47678.5)")
    description: str = Field(description="as the citizen wrote it; for other cases, the case's description")
    agency_responsible: str | None = Field(description="department the case is dispatched to")
    service_notice: str | None = Field(description="notice about the request")
    requested_datetime: Time = Field(description="when reported, ISO 8601 with offset")
    updated_datetime: Time = Field(description="last workflow step, ISO 8601 with offset")
    expected_datetime: Time | None = Field(description="disposal deadline, ISO 8601 with offset")
    address: str | None = Field(description="address_string as the citizen wrote it, else the grid's place")
    address_id: str | None = Field(description="unit grid code")
    zipcode: str | None = Field(description="not used (null)")
    lat: float = Field(description="WGS-84 latitude")
    long: float = Field(description="WGS-84 longitude")
    media_url: str | None = Field(description="public photo of the case (faces and plates blurred)")


class Open311Created(Schema):
    service_request_id: str | None = Field(
        description="case number: new, or of the open case this report joined; null with a token"
    )
    token: str | None = Field(
        default=None, description="where the request is not yet a case (held for a person to place)"
    )
    service_notice: str | None = Field(description="what became of the request, in plain Chinese")
    account_id: str | None = Field(description="not used (null)")


# --- people and sessions -----------------------------------------------------------------------


USERNAME = r"^[A-Za-z0-9.\-]+$"


class SignInIn(RequestBody):
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME, description="account name")
    password: str = Field(min_length=1, max_length=256, description="password")


class SessionOut(Schema):
    name: str = Field(description="display name (the flow log's operator) or the API key's name")
    username: str | None = Field(default=None, description="account name; null for an API key")
    role: Role | None = Field(default=None, description="the person's role; null for an API key")
    department: str | None = Field(default=None, description="a handler's department")
    scopes: list[str] = Field(description="API scopes the caller has")
    actions: list[str] = Field(
        description="workflow actions the caller may take (in the states that allow them)"
    )
    csrf_token: str | None = Field(
        default=None, description="send as X-CSRF-Token with every change made with the session cookie"
    )


class UserIn(RequestBody):
    username: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=USERNAME,
        description="account name: letters, digits, '.', '-'",
    )
    display_name: str | None = Field(
        default=None, max_length=MAX_NAME_LENGTH, description="name in flow logs; default username"
    )
    password: str = Field(min_length=10, max_length=256, description="at least 10 characters")
    role: Role = Field(
        description="operator 受理员, dispatcher 值班长, handler, inspector 监督员, leader, admin"
    )
    department: str | None = Field(
        default=None, description="handlers: their department (GET /v1/departments)"
    )
    grids: list[str] = Field(default=[], description="inspectors: unit grid codes they are responsible for")


class UserOut(Schema):
    id: int = Field(description="user id (flow-log `user_id`)")
    username: str = Field(description="account name")
    display_name: str = Field(description="name in flow logs")
    role: Role = Field(description="role")
    department: str | None = Field(description="a handler's department")
    grids: list[str] = Field(description="an inspector's responsibility grids")
    created_at: Time = Field(description="creation time")
    disabled_at: Time | None = Field(description="null while the account may sign in")


# --- supervision (督查督办) ------------------------------------------------------------------------


class SupervisionIn(RequestBody):
    grids: list[str] = Field(
        min_length=1, max_length=200, description="one unit grid (a worst spot) or several (a road section)"
    )
    name: str | None = Field(
        default=None, max_length=128, description="a road section's name; default the grid's"
    )
    department: str = Field(max_length=64, description="the responsible department (GET /v1/departments)")
    deadline_at: Instant = Field(description="to be cleared by")
    reason: str = Field(min_length=1, max_length=4000, description="why, e.g. 'worst spot of 2025-09-3'")


class SupervisionPatch(RequestBody):
    department: str | None = Field(default=None, max_length=64, description="new responsible department")
    deadline_at: Instant | None = Field(default=None, description="new deadline")


class SupervisionCheck(RequestBody):
    note: str = Field(min_length=1, max_length=4000, description="what the check found on site")


class SupervisionOut(Schema):
    id: int = Field(description="item id")
    kind: Literal["spot", "section"] = Field(description="worst spot (one grid) or road section")
    name: str = Field(description="grid name or section name")
    grids: list[str] = Field(description="unit grid codes")
    street: str | None = Field(description="street of the first grid")
    reason: str = Field(description="why it was flagged")
    department: str = Field(description="responsible department")
    deadline_at: Time = Field(description="to be cleared by")
    state: Literal["open", "closed"] = Field(description="open until a check closes it")
    opened_by: str = Field(description="who flagged it")
    opened_at: Time = Field(description="when")
    open_cases_at_start: int = Field(
        description="filed cases open in its grids when flagged (reports in review not counted)"
    )
    open_cases: int = Field(description="filed cases open in its grids now (reports in review not counted)")
    overdue: bool = Field(description="open past its deadline")
    closed_by: str | None = Field(description="who checked and closed it")
    closed_at: Time | None = Field(description="when")
    check_note: str | None = Field(description="the check's finding")


class DistrictRow(Schema):
    rank: int = Field(description="1 = worst")
    district: str = Field(description="district (grid property `county`, else the code's first 6 digits)")
    problems: int = Field(description="reports not rejected nor cancelled, first reported in the month")
    area_km2: float = Field(description="area of the district's unit grids")
    problems_per_km2: float = Field(description="problems / area: the ranking key")
    on_time_closing_rate: float | None = Field(description="closed by the deadline / due")
    score: float | None = Field(description="weighted composite (configs/stats.yaml)")


class DistrictRankingOut(Schema):
    month: str = Field(description="YYYY-MM")
    since: Time = Field(description="first day of the month, bureau time")
    until: Time = Field(description="first day of the next month")
    districts: list[DistrictRow] = Field(description="districts, worst first")


class InspectorRow(Schema):
    username: str = Field(description="inspector account")
    name: str = Field(description="display name")
    grids: list[str] = Field(description="responsibility grids")
    reports: int = Field(description="cases they reported")
    valid: int = Field(description="... confirmed or corrected")
    rejected: int = Field(description="... rejected")
    found: int = Field(description="valid cases in their grids they reported")
    missed: int = Field(description="valid cases in their grids a camera, citizen, hotline or media reported")
    verifies: int = Field(description="confirm / correct / reject steps they took (核实 on site)")
    verifies_on_time: int = Field(description="... within the verify stage limit")
    checks: int = Field(description="check_pass / check_fail steps they took")
    checks_on_time: int = Field(description="... within the check stage limit")
    valid_report_rate: float | None = Field(description="valid / (valid + rejected)")
    miss_rate: float | None = Field(description="missed / (missed + found)")
    on_time_verify_rate: float | None = Field(description="verifies_on_time / verifies")
    on_time_check_rate: float | None = Field(description="checks_on_time / checks")


class InspectorsOut(Schema):
    since: Time = Field(description="cases first reported at or after")
    until: Time = Field(description="... and before")
    inspectors: list[InspectorRow] = Field(description="one row per inspector account")


class Open311Token(Schema):
    service_request_id: str | None = Field(description="the case number once a person placed it, else null")
    token: str = Field(description="the token of POST requests")


class CitizenRequestOut(Schema):
    token: str = Field(description="the token the citizen's system holds")
    event: str = Field(description="event key of its service_code")
    fields: dict[str, Any] = Field(description="the GeoReport fields as the citizen sent them")
    reporter: str = Field(description="name of the API key that posted it")
    received_at: Time = Field(description="when it was received")
    service_request_id: str | None = Field(description="case number once placed")
    case_id: int | None = Field(description="case id once placed (use in /v1/cases/{id})")
    placed_at: Time | None = Field(description="when a person placed it")
    placed_by: str | None = Field(description="who placed it")


class Placement(RequestBody):
    lat: float = Field(ge=-90, le=90, description="latitude where the problem is (in coord_system)")
    lon: float = Field(ge=-180, le=180, description="longitude where the problem is (in coord_system)")
    coord_system: CoordSystem = Field(default="wgs84", description=COORD_SYSTEM_HELP)
