"""Database tables of the case domain (SQLAlchemy 2.0, the same on SQLite and PostgreSQL).

Every change of schema is an Alembic revision in serve/migrations/versions/; never create tables
with `metadata.create_all` outside tests of this module.

Times are timezone-aware UTC in Python and stored as UTC. Coordinates are WGS-84 degrees.
Statuses, sources, roles, reviews, states and flow-log steps are the `StrEnum`s of
serve/cases/enums.py, each column with a CHECK constraint that refuses any other value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from serve.cases.enums import (
    FLOW_STEPS,
    AiReview,
    CaseSource,
    EvidenceRole,
    ExtensionState,
    PhotoSource,
    PhotoStatus,
    RecordType,
    Role,
    State,
    SupervisionState,
)
from vision.core.phash import hash_bands


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; attach a timezone first")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def one_of(values: type[StrEnum] | tuple[str, ...], length: int, constraint: str) -> Enum:
    """A string column that holds one of `values` (an enum's members come back as members), with a
    CHECK constraint named `constraint`: the same on SQLite and PostgreSQL, no native enum type."""
    kinds = values if isinstance(values, tuple) else (values,)
    return Enum(
        *kinds,
        native_enum=False,
        create_constraint=True,
        length=length,
        name=constraint,
        values_callable=lambda members: [member.value for member in members],
    )


PHASH_BANDS = ("phash_band0", "phash_band1", "phash_band2")
# a photo kept with what the model saw on it, filed in no case for want of a place, a time or a grid
UNFILED_ROW = text("status IN ('unlocated', 'undated', 'outside')")


def with_bands(row: Photo | Evidence, phash: str | None) -> str | None:
    """Keep a row's indexed phash bands in step with its hash, whichever code path sets it."""
    bands = hash_bands(phash) if phash is not None else (None,) * len(PHASH_BANDS)
    for column, value in zip(PHASH_BANDS, bands, strict=True):
        setattr(row, column, value)
    return phash


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Photo(Base):
    """One image file seen by a scan or an upload, keyed by content (sha256): the unit of resumption."""

    __tablename__ = "photos"
    __table_args__ = (
        # a scan's later read of a path supersedes its unreadable rows (intake.supersede_unreadable):
        # looked up for every photo recorded, so indexed, and only over the few unreadable rows
        Index(
            "ix_photos_unreadable_path",
            "path",
            sqlite_where=text("status = 'unreadable'"),
            postgresql_where=text("status = 'unreadable'"),
        ),
        # a photo whose findings were filed finds the earlier copies of itself that could file none
        # (intake.waiting_copies): its hash's bands, indexed over those photos alone (migration 0022)
        *(
            Index(f"ix_photos_unfiled_{band}", band, sqlite_where=UNFILED_ROW, postgresql_where=UNFILED_ROW)
            for band in PHASH_BANDS
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    phash: Mapped[str | None] = mapped_column(String(16))  # vision.core.phash: known by its look
    phash_band0: Mapped[int | None] = mapped_column(Integer)  # its bands, set with it (`_set_bands`)
    phash_band1: Mapped[int | None] = mapped_column(Integer)
    phash_band2: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    source: Mapped[PhotoSource] = mapped_column(one_of(PhotoSource, 16, "ck_photos_source"))
    status: Mapped[PhotoStatus] = mapped_column(one_of(PhotoStatus, 16, "ck_photos_status"))
    error: Mapped[str | None] = mapped_column(Text)  # why an unreadable photo could not be used
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column()  # EXIF or given; null when undated
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    model_version: Mapped[str | None] = mapped_column(String(64))
    detections: Mapped[list[Any] | None] = mapped_column()  # vision.core.boxes: all, above or below threshold
    processed_at: Mapped[datetime] = mapped_column()

    @validates("phash")
    def _set_bands(self, _key: str, phash: str | None) -> str | None:
        return with_bands(self, phash)


class Case(Base):
    """A grid case (案卷): one violation of one event class at one place, with its evidence."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_open_lookup", "event", "state", "last_seen_at"),
        # the duplicate rule's lookup by place (serve/cases/findings.py, find_duplicate): bounded
        # whatever order an archive is scanned in, where the time index alone reads every later case
        Index("ix_cases_place_lookup", "event", "lat", "lon"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    source: Mapped[CaseSource] = mapped_column(one_of(CaseSource, 16, "ck_cases_source"))
    record_type: Mapped[RecordType] = mapped_column(one_of(RecordType, 16, "ck_cases_record_type"))
    event: Mapped[str] = mapped_column(String(40))  # taxonomy event key
    major: Mapped[str] = mapped_column(String(4))
    cjt214: Mapped[str] = mapped_column(String(8))
    gbt47678: Mapped[str] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(Text, default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(String(15), index=True)
    street: Mapped[str | None] = mapped_column(String(64), index=True)
    community: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[State] = mapped_column(one_of(State, 24, "ck_cases_state"), index=True)
    ai_review: Mapped[AiReview | None] = mapped_column(one_of(AiReview, 16, "ck_cases_ai_review"))
    auto_filed: Mapped[bool] = mapped_column(default=False)  # filed without review (workflow.yaml auto_file)
    camera_id: Mapped[str | None] = mapped_column(String(64))
    filed_at: Mapped[datetime] = mapped_column()  # when the problem was seen (EXIF / frame time)
    deadline_at: Mapped[datetime | None] = mapped_column()  # from filing (立案) on; none while in review
    on_site_due_at: Mapped[datetime | None] = mapped_column()  # 双十: someone on site by then (`start`)
    first_seen_at: Mapped[datetime] = mapped_column(index=True)  # every period read (migration 0019)
    last_seen_at: Mapped[datetime] = mapped_column()  # latest evidence: the duplicate window counts from it
    closed_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=1)  # ETag; bumped by every write

    evidence: Mapped[list[Evidence]] = relationship(back_populates="case", order_by="Evidence.id")
    flow: Mapped[list[FlowEntry]] = relationship(back_populates="case", order_by="FlowEntry.id")

    __mapper_args__ = {"version_id_col": version}


class Evidence(Base):
    """A photo attached to a case, with its role and the boxes that made it evidence."""

    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id"), index=True)
    role: Mapped[EvidenceRole] = mapped_column(one_of(EvidenceRole, 16, "ck_evidence_role"))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    phash: Mapped[str | None] = mapped_column(String(16))  # null for camera frames and older rows
    # the phash's bands (vision.core.phash.hash_bands), set with it: copies found by index, not by
    # reading every stored hash for every photo a scan takes
    phash_band0: Mapped[int | None] = mapped_column(Integer, index=True)
    phash_band1: Mapped[int | None] = mapped_column(Integer, index=True)
    phash_band2: Mapped[int | None] = mapped_column(Integer, index=True)
    captured_at: Mapped[datetime] = mapped_column()
    boxes: Mapped[list[Any]] = mapped_column()  # vision.core.boxes: write Box.to_json, read parse_boxes
    confidence: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(64))
    crop_path: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any] | None] = mapped_column()  # e.g. OCR text and phone numbers of flyers

    case: Mapped[Case] = relationship(back_populates="evidence")

    @validates("phash")
    def _set_bands(self, _key: str, phash: str | None) -> str | None:
        return with_bands(self, phash)


class FlowEntry(Base):
    """One step of a case's flow log: who moved it from which state to which, when, and how late."""

    __tablename__ = "flow_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    action: Mapped[str] = mapped_column(one_of(FLOW_STEPS, 24, "ck_flow_log_action"))
    from_state: Mapped[State | None] = mapped_column(one_of(State, 24, "ck_flow_log_from_state"))
    to_state: Mapped[State] = mapped_column(one_of(State, 24, "ck_flow_log_to_state"))
    operator: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)  # the person, if one
    at: Mapped[datetime] = mapped_column()
    seconds_used: Mapped[float | None] = mapped_column(Float)
    overdue: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str | None] = mapped_column(Text)

    case: Mapped[Case] = relationship(back_populates="flow")


class CaseCounter(Base):
    """Per-day sequence of case numbers (PREFIX + yyyyMMdd + sequence), safe under concurrency."""

    __tablename__ = "case_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class ApiKey(Base):
    """A service API key: only a salted scrypt hash is kept; `key_id` is the public half to look it up."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[Any]] = mapped_column()
    salt: Mapped[str] = mapped_column(String(32))
    hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    rate_per_min: Mapped[int | None] = mapped_column()  # its own rate (migration 0020); None: its scopes'


class IdempotencyRecord(Base):
    """The first response to a request sent with an `Idempotency-Key`, replayed to its retries."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("principal", "endpoint", "key", name="uq_idempotency_scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    principal: Mapped[str] = mapped_column(String(16))  # key_id of the caller: keys are per client
    endpoint: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256: same key, other body = error
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class AuditEntry(Base):
    """Who changed what through the API, and how it ended: every non-read request leaves one row."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    principal: Mapped[str | None] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)


class CameraState(Base):
    """A camera engine's state (vision/live/state.py: clocks, incidents, background models), saved
    so that a restart neither hides what stands in a zone nor leaves a ghost of it."""

    __tablename__ = "camera_states"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    captured_at: Mapped[datetime] = mapped_column()  # capture time of the last frame applied
    saved_at: Mapped[datetime] = mapped_column()
    state: Mapped[bytes] = mapped_column(LargeBinary)
    # the violations standing on the last frame saved, [{"incident": id, "case_id": id, "seen_at": ISO
    # time of the camera's last frame with a picture}]: read by the other cameras of a case (migration
    # 0018) without decoding the state
    standing: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    # views accepted as the camera's reference (POST /v1/cameras/{id}/view), counted (migration 0021): a
    # process holding the camera (a `watch`) that sees the count grow takes its newest frame as the reference
    view_accepts: Mapped[int] = mapped_column(default=0, server_default="0")


class User(Base):
    """A person who signs in to the console: a scrypt password hash, one role, a department for
    handlers, and for inspectors the unit grids they are responsible for (their miss rate counts there)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(one_of(Role, 16, "ck_users_role"))
    department: Mapped[str | None] = mapped_column(String(64))
    grids: Mapped[list[Any]] = mapped_column(default=list)  # responsibility grid (责任网格) codes
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column()


class UserSession(Base):
    """A console session: only the sha256 of its cookie token is kept (a copy of the table lets no one in)."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()


class ExtensionRequest(Base):
    """A request to move a case's deadline (延期申请), applied only when a person of another role approves."""

    __tablename__ = "extension_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    extend_by: Mapped[float] = mapped_column(Float)  # in the unit of the class's limit
    note: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(64))  # the person, as the flow log names them
    requester_id: Mapped[str] = mapped_column(String(16))  # principal id: the same person cannot approve
    requester_role: Mapped[str | None] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column()
    state: Mapped[ExtensionState] = mapped_column(one_of(ExtensionState, 16, "ck_extension_requests_state"))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_note: Mapped[str | None] = mapped_column(Text)


class SupervisionItem(Base):
    """A 挂牌督办 item: a worst spot (one grid) or road section (several) followed until a check
    finds no open case left in it (serve/cases/supervision.py)."""

    __tablename__ = "supervision_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(one_of(("spot", "section"), 16, "ck_supervision_items_kind"))
    name: Mapped[str] = mapped_column(String(128))
    grids: Mapped[list[Any]] = mapped_column()  # unit grid codes
    street: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    department: Mapped[str] = mapped_column(String(64))
    deadline_at: Mapped[datetime] = mapped_column()
    state: Mapped[SupervisionState] = mapped_column(
        one_of(SupervisionState, 16, "ck_supervision_items_state"), index=True
    )
    opened_by: Mapped[str] = mapped_column(String(64))
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    opened_at: Mapped[datetime] = mapped_column()
    open_cases_at_start: Mapped[int] = mapped_column(Integer)
    closed_by: Mapped[str | None] = mapped_column(String(64))
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None] = mapped_column()
    check_note: Mapped[str | None] = mapped_column(Text)


class CitizenRequest(Base):
    """An Open311 request that is not yet a case: it came with an address no grid of the layout
    names and no position, so a person must place it. Its token answers GET tokens/{token} with
    the case number once it is placed (serve/api/open311.py)."""

    __tablename__ = "citizen_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    event: Mapped[str] = mapped_column(String(40))  # taxonomy event key of its service_code
    fields: Mapped[dict[str, Any]] = mapped_column()  # the GeoReport fields as the citizen sent them
    # serve/cases/fingerprints.held_request_key: the same request sent again is found by it
    fields_sha256: Mapped[str] = mapped_column(String(64), index=True)
    reporter: Mapped[str] = mapped_column(String(64))  # name of the API key that posted it
    received_at: Mapped[datetime] = mapped_column(index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    placed_at: Mapped[datetime | None] = mapped_column()
    placed_by: Mapped[str | None] = mapped_column(String(64))


class Notification(Base):
    """An outgoing message in the outbox (serve/cases/notify.py): kept until delivered or given up."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(64))  # configs/notifications.yaml target name
    event: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)  # one warning per case and deadline
    payload: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column()
    gave_up_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
