"""Fixed cameras and their zones: `configs/cameras.yaml` loaded into typed, checked objects.

Zones are polygons in normalised image coordinates (pixels only exist once a frame's size is
known, see vision/live/zones.py). Every field a rule relies on is checked at load time against the
taxonomy, and an error names the file and the field, so a typo never surfaces as a silent rule
that never fires.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import supervision as sv
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from shapely.geometry import Polygon

from vision.core.imageio import CoordSystem
from vision.core.taxonomy import Taxonomy
from vision.core.yamlfile import ConfigError, read_yaml
from vision.live.stream import check_stream_url

DAY_MINUTES = 24 * 60
CAMERA_ID_MAX = 64  # characters: the database keeps a camera's id in a column this wide
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class CameraConfigError(ConfigError):
    """A camera file that cannot be used; the message names the file and the field."""


class UnknownCameraError(LookupError):
    """A camera id that is not configured; the message lists the ones that are."""

    def __init__(self, camera_id: str, known: list[str]) -> None:
        self.configured = f"configured: {', '.join(known) or 'none'}"
        super().__init__(f"unknown camera '{camera_id}' ({self.configured})")
        self.camera_id = camera_id


# ---------------------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Schedule:
    """Local wall-clock windows in which a rule is enforced, e.g. no stalls 07:00-22:00.

    Windows are kept as merged minute ranges of one day; "22:00-06:00" wraps past midnight.
    """

    ranges: tuple[tuple[int, int], ...]  # merged, sorted [start, end) minutes of the day

    @classmethod
    def parse(cls, windows: list[str] | tuple[str, ...]) -> Schedule:
        pieces: list[tuple[int, int]] = []
        for text in windows:
            match = _WINDOW.match(str(text))
            if not match:
                raise ValueError(f"'{text}' is not a window like '07:00-22:00'")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if m1 > 59 or m2 > 59 or start > DAY_MINUTES or end > DAY_MINUTES or start == DAY_MINUTES:
                raise ValueError(f"'{text}' has a time outside 00:00-24:00")
            if start == end:
                raise ValueError(f"'{text}' is an empty window")
            pieces += [(start, end)] if start < end else [(start, DAY_MINUTES), (0, end)]
        merged: list[tuple[int, int]] = []
        for start, end in sorted(pieces):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return cls(tuple(merged))

    @property
    def always(self) -> bool:
        return self.ranges == ((0, DAY_MINUTES),)

    def active_since(self, local: datetime) -> datetime | None:
        """When the window that contains `local` began (None: outside every window).

        A window ending at 24:00 runs on into one starting at 00:00, so an all-day rule never
        restarts its clock at midnight: the start is then `datetime.min` in local's timezone.
        """
        if self.always:
            return datetime.min.replace(tzinfo=local.tzinfo)
        minute = local.hour * 60 + local.minute + local.second / 60
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for start, end in self.ranges:
            if start <= minute < end:
                if start == 0 and self.ranges[-1][1] == DAY_MINUTES:
                    return midnight - timedelta(days=1) + timedelta(minutes=self.ranges[-1][0])
                return midnight + timedelta(minutes=start)
        return None


ALWAYS = Schedule(((0, DAY_MINUTES),))


def _schedule(value: Any) -> Schedule:
    if isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("a schedule is a list of windows like ['07:00-22:00']")
    return Schedule.parse(value)


ScheduleField = Annotated[Schedule, BeforeValidator(_schedule)]
Point = tuple[float, float]


# ------------------------------------------------------------------------------------------ models


class _Frozen(BaseModel):
    """Finite numbers only: `.inf` (YAML takes it) passed every bound, never fired a rule and made
    GET /v1/cameras a 500 (JSON has no infinity)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        """Text UTF-8 and the database can hold: YAML's `"\\ud800"` (half a character) was loaded and
        made GET /v1/cameras a 500; a NUL is refused by PostgreSQL's text."""
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("half a character (a lone surrogate) in the text") from None
        if isinstance(value, str) and "\0" in value:
            raise ValueError("a NUL character in the text")
        return value


def _taxonomy(info: ValidationInfo) -> Taxonomy:
    context = info.context or {}
    if "taxonomy" not in context:
        raise ValueError("cameras are validated against a taxonomy (parse_cameras passes it)")
    taxonomy: Taxonomy = context["taxonomy"]
    return taxonomy


def _known_class_names(value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    names = _taxonomy(info).names
    for name in value:
        if name not in names:
            raise ValueError(f"class '{name}' is not in the taxonomy ({', '.join(names)})")
    return value


class Rule(_Frozen):
    """What a zone forbids: a detector class standing there (objects) or anything new (occupancy)."""

    name: str
    detect: Literal["objects", "occupancy"]
    classes: tuple[str, ...] = ()
    event: str | None = None
    class_events: dict[str, str] = Field(default_factory=dict)
    min_dwell_s: float = Field(ge=0)
    schedule: ScheduleField = ALWAYS
    anchor: str = "bottom_center"
    min_confidence: float | None = Field(default=None, ge=0, le=1)  # None: the taxonomy's per class
    min_area: float | None = Field(default=None, gt=0, le=1)  # occupancy: fraction of the zone
    min_area_m2: float | None = Field(default=None, gt=0)  # occupancy: needs the camera's ground homography

    @field_validator("anchor")
    @classmethod
    def _known_anchor(cls, value: str) -> str:
        if value.upper() not in sv.Position.__members__:
            names = ", ".join(p.lower() for p in sv.Position.__members__)
            raise ValueError(f"'{value}' is not one of {names}")
        return value.lower()

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return _known_class_names(value, info)

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str | None, info: ValidationInfo) -> str | None:
        events = _taxonomy(info).events
        if value is not None and value not in events:
            raise ValueError(f"event '{value}' is not in the taxonomy ({', '.join(events)})")
        return value

    @field_validator("class_events")
    @classmethod
    def _known_class_events(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        taxonomy = _taxonomy(info)
        for name, event in value.items():
            if name not in taxonomy.names:
                raise ValueError(f"class '{name}' is not in the taxonomy")
            if event not in taxonomy.events:
                raise ValueError(f"event '{event}' (for class '{name}') is not in the taxonomy")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Rule:
        if self.detect == "objects" and not self.classes:
            raise ValueError("an objects rule needs 'classes'")
        if self.detect == "occupancy":
            if self.event is None:
                raise ValueError("an occupancy rule needs 'event' (what the occupation becomes)")
            if (self.min_area is None) == (self.min_area_m2 is None):
                raise ValueError("an occupancy rule needs exactly one of 'min_area' or 'min_area_m2'")
        return self

    @property
    def position(self) -> sv.Position:
        return sv.Position[self.anchor.upper()]


def _normalised_points(points: tuple[Point, ...], minimum: int) -> tuple[Point, ...]:
    if len(points) < minimum:
        raise ValueError(f"needs at least {minimum} points, got {len(points)}")
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"point ({x}, {y}) is outside 0..1: zones are in normalised image coordinates")
    return points


class Zone(_Frozen):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=CAMERA_ID_MAX)
    name: str = ""
    polygon: tuple[Point, ...]
    rule: Rule

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, value: tuple[Point, ...]) -> tuple[Point, ...]:
        _normalised_points(value, 3)
        shape = Polygon(value)
        if not shape.is_valid or shape.area <= 0:
            raise ValueError("the polygon crosses itself or has no area")
        return value


class CaseSettings(_Frozen):
    evidence_every_s: float = Field(default=600, gt=0)
    clear_after_s: float = Field(default=120, gt=0)
    verify: Literal["after_handled", "any"] = "after_handled"
    return_watch_s: float = Field(default=3600, ge=0)
    return_dwell_s: float = Field(default=30, ge=0)
    same_place_iou: float = Field(default=0.3, gt=0, le=1)


class TrackerSettings(_Frozen):
    """A track starts at its class's threshold (vision/live/tracking.py); `keep_confidence` is the
    lowest score that still keeps a track alive."""

    lost_s: float = Field(default=4, gt=0)
    keep_confidence: float = Field(default=0.3, ge=0, le=1)
    min_frames: int = Field(default=2, ge=1)


class DwellSettings(_Frozen):
    max_drift: float = Field(default=0.3, gt=0)
    refind_s: float = Field(default=60, ge=0)
    restart_bridge_s: float = Field(default=600, ge=0)  # longest gap in the frames dwell is carried across
    refind_iou: float = Field(default=0.3, gt=0, le=1)
    refind_appearance: float = Field(default=0.43, gt=0, le=1)  # colour distance of "the same object"
    max_objects: int = Field(default=256, ge=1)
    jump_s: float = Field(default=300, gt=0)  # further ahead of the last applied frame: held (timeline.py)


class OccupancySettings(_Frozen):
    width: int = Field(default=320, ge=32, le=1920)
    short_tau_s: float = Field(default=5, gt=0)
    long_sample_s: float = Field(default=120, gt=0)
    long_samples: int = Field(default=9, ge=1, le=64)
    diff_threshold: float = Field(default=30, gt=0)
    stable_threshold: float = Field(default=14, gt=0)
    min_blob_px: int = Field(default=25, ge=1)
    gap_s: float = Field(default=30, ge=0)
    mask_classes: tuple[str, ...] = ("car", "bus", "truck", "motorcycle")
    hold_max_s: float = Field(default=86400, gt=0)

    @field_validator("mask_classes")
    @classmethod
    def _known_mask_classes(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return _known_class_names(value, info)


class PictureSettings(_Frozen):
    """When a frame shows nothing the rules can judge (vision/live/picture.py); shares of full scale."""

    min_contrast: float = Field(default=0.04, ge=0, le=1)  # 5th-95th percentile range of the levels
    min_detail: float = Field(default=0.015, ge=0, le=1)  # fine detail, relative to that range
    frozen_s: float = Field(default=60, gt=0)  # the very same pixels this long (capture time): frozen


class ViewSettings(_Frozen):
    """When a frame shows another view than the one the zones were drawn on (vision/live/view.py):
    shares of the picture, not pixels, so they hold at any resolution."""

    max_shift: float = Field(default=0.01, gt=0, le=0.5)  # of the width a part may move and stay in place
    min_match: float = Field(default=0.5, gt=0, le=1)  # of the textured parts in place: the same view
    settle_s: float = Field(default=60, gt=0)  # the frames agree this long (capture time): the reference
    refresh_s: float = Field(default=86400, gt=0)  # the reference this old (capture time): refreshed ...
    refresh_match: float = Field(default=0.9, gt=0, le=1)  # ... by a frame with this share of tiles still
    refresh_detail: float = Field(default=0.8, gt=0)  # ... and this share of the reference's detail
    moved_after_s: float = Field(default=30, ge=0)  # another view this long (capture time): reported moved


FLAT_CORNER = 1e-3  # a triangle of three corners this small a share of the quadrilateral: a line


def _quadrilateral(points: tuple[Point, ...]) -> tuple[Point, ...]:
    """Four corners that make a homography: in order around a quadrilateral that does not cross
    itself, no three on a line. Crossed or flat corners give a map of garbage areas (a bow-tie
    gave 8,000 m² for a 200 m² patch) or of none, and an m² rule that is never right."""
    shape = Polygon(points)
    if not shape.is_valid or shape.area <= 0:
        raise ValueError("the four points cross or have no area: give the corners in order around the patch")
    for left_out in range(4):
        triangle = Polygon([p for k, p in enumerate(points) if k != left_out])
        if triangle.area <= FLAT_CORNER * shape.area:
            raise ValueError("three of the four points lie on a line: they must be the corners of a patch")
    return points


class Ground(_Frozen):
    """Four image points (normalised) and where they lie on the ground (metres): a homography."""

    image: tuple[Point, Point, Point, Point]
    ground_m: tuple[Point, Point, Point, Point]

    @field_validator("image")
    @classmethod
    def _normalised(cls, value: tuple[Point, ...]) -> tuple[Point, ...]:
        return _quadrilateral(_normalised_points(value, 4))

    @field_validator("ground_m")
    @classmethod
    def _corners(cls, value: tuple[Point, ...]) -> tuple[Point, ...]:
        if not all(math.isfinite(v) for point in value for v in point):
            raise ValueError("ground positions must be finite numbers of metres")
        return _quadrilateral(value)


class Camera(_Frozen):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=CAMERA_ID_MAX)
    name: str = ""
    address: str | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    coord_system: CoordSystem = "wgs84"  # of lat/lon as written (read off AMap: gcj02); the service converts
    grid_code: str | None = Field(default=None, pattern=r"^\d{14,15}$")
    stream: str | None = None
    pull: bool = False  # the service itself reads `stream` (else frames are pushed, or `watch` runs)
    analyse_fps: float = Field(default=2, gt=0, le=30)
    timezone: str = "Asia/Shanghai"
    zones: tuple[Zone, ...] = Field(min_length=1)
    ground: Ground | None = None
    cases: CaseSettings = CaseSettings()
    tracker: TrackerSettings = TrackerSettings()
    dwell: DwellSettings = DwellSettings()
    occupancy: OccupancySettings = OccupancySettings()
    picture: PictureSettings = PictureSettings()
    view: ViewSettings = ViewSettings()

    @field_validator("stream")
    @classmethod
    def _allowed_scheme(cls, value: str | None) -> str | None:
        return None if value is None else check_stream_url(value)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown timezone '{value}'") from err
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Camera:
        ids = [z.id for z in self.zones]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"zone ids used twice: {', '.join(twice)}")
        if self.dwell.refind_s > self.cases.clear_after_s:
            raise ValueError(
                f"dwell.refind_s ({self.dwell.refind_s}) must not exceed cases.clear_after_s "
                f"({self.cases.clear_after_s}): an object gone long enough to clear its place is gone"
            )
        for zone in self.zones:
            if zone.rule.min_area_m2 is not None and self.ground is None:
                raise ValueError(f"zone '{zone.id}': min_area_m2 needs the camera's 'ground' homography")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class CameraRegistry:
    cameras: dict[str, Camera]
    source: Path

    def get(self, camera_id: str) -> Camera:
        try:
            return self.cameras[camera_id]
        except KeyError:
            raise UnknownCameraError(camera_id, list(self.cameras)) from None

    def only(self, camera_id: str) -> CameraRegistry:
        """The registry of one camera: a `watch` process owns that camera's state alone, and saving
        the others' restored copies would overwrite newer state the service or another watch saved."""
        return CameraRegistry({camera_id: self.get(camera_id)}, self.source)

    def __iter__(self) -> Any:
        return iter(self.cameras.values())

    def __len__(self) -> int:
        return len(self.cameras)


# ------------------------------------------------------------------------------------------ loading


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of mappings: the camera's fields win over `defaults`, a zone's over its rule."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _where(prefix: str, loc: tuple[Any, ...]) -> str:
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _raise_with_fields(source: Path, prefix: str, err: ValidationError) -> NoReturn:
    errors = err.errors()
    # a list whose every item was refused is also "too short" (no valid item left): the items say why
    told = [
        e
        for e in errors
        if e["type"] != "too_short"
        or not any(o["loc"][: len(e["loc"])] == e["loc"] != o["loc"] for o in errors)
    ]
    lines = [f"{_where(prefix, tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in told]
    raise CameraConfigError(f"{source}: " + "; ".join(lines)) from None


def _mapping(value: Any, source: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CameraConfigError(f"{source}: {where}: expected a mapping, got {type(value).__name__}")
    return value


def _resolve_zone(raw: Any, presets: dict[str, Any], source: Path, where: str) -> dict[str, Any]:
    """A zone entry names a preset rule; every other non-zone field overrides the preset's."""
    zone = dict(_mapping(raw, source, where))
    preset = zone.pop("rule", None)
    if preset is None:
        raise CameraConfigError(f"{source}: {where}.rule: missing (one of {', '.join(presets)})")
    if not isinstance(preset, str) or preset not in presets:
        known = ", ".join(presets)
        raise CameraConfigError(f"{source}: {where}.rule: unknown rule '{preset}' (one of {known})")
    own: dict[str, Any] = {k: zone.pop(k) for k in ("id", "name", "polygon") if k in zone}
    rule = _merge(_mapping(presets[preset], source, f"rules.{preset}"), zone)
    return {**own, "rule": {"name": preset, **rule}}


def parse_cameras(data: Any, taxonomy: Taxonomy, source: Path = Path("<memory>")) -> CameraRegistry:
    """Build the camera registry from parsed YAML; errors name the file and the field."""
    context = {"taxonomy": taxonomy}
    top = _mapping(data, source, "top level")
    defaults = _mapping(top.get("defaults") or {}, source, "defaults")
    presets = _mapping(top.get("rules") or {}, source, "rules")
    for name, preset in presets.items():
        try:
            Rule.model_validate({"name": name, **_mapping(preset, source, f"rules.{name}")}, context=context)
        except ValidationError as err:
            _raise_with_fields(source, f"rules.{name}", err)
    raw_cameras = top.get("cameras")
    if not isinstance(raw_cameras, list) or not raw_cameras:
        raise CameraConfigError(f"{source}: cameras: expected a non-empty list of cameras")
    cameras: dict[str, Camera] = {}
    for index, raw in enumerate(raw_cameras):
        where = f"cameras[{index}]"
        entry = _merge(defaults, _mapping(raw, source, where))
        if "timezone" in top and "timezone" not in entry:
            entry["timezone"] = top["timezone"]
        zones = entry.get("zones")
        if isinstance(zones, list):
            entry["zones"] = [
                _resolve_zone(z, presets, source, f"{where}.zones[{i}]") for i, z in enumerate(zones)
            ]
        try:
            camera = Camera.model_validate(entry, context=context)
        except ValidationError as err:
            _raise_with_fields(source, where, err)
        if camera.id in cameras:
            raise CameraConfigError(f"{source}: {where}.id: camera id '{camera.id}' is used twice")
        cameras[camera.id] = camera
    return CameraRegistry(cameras, source)


def load_cameras(path: Path | str, taxonomy: Taxonomy, max_bytes: int | None = None) -> CameraRegistry:
    """Read `<configs_dir>/cameras.yaml` (or another file of the same form) now: a reload reads the
    file as it is, against the taxonomy of the same configuration; no more than `max_bytes` of it."""
    path = Path(path)
    return parse_cameras(read_yaml(path, CameraConfigError, max_bytes), taxonomy, path)
