"""Camera config, schedules and zones in pixels (vision/live/cameras.py, vision/live/zones.py)."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import supervision as sv
import yaml
from configured import CONFIGS, TAXONOMY

from vision.core.yamlfile import UniqueKeyLoader, read_yaml
from vision.live.cameras import (
    CameraConfigError,
    Schedule,
    UnknownCameraError,
    load_cameras,
    parse_cameras,
)
from vision.live.zones import FrameZone, pixel_polygon, polygon_mask

SHANGHAI = ZoneInfo("Asia/Shanghai")

BASE: dict[str, Any] = {
    "rules": {
        "no_parking_motor": {"detect": "objects", "classes": ["car"], "min_dwell_s": 60},
        "shop_front": {"detect": "occupancy", "event": "shop_overflow", "min_area": 0.1, "min_dwell_s": 60},
    },
    "cameras": [
        {
            "id": "cam-1",
            "lat": 34.75,
            "lon": 113.66,
            "grid_code": "410103001001001",
            "zones": [
                {"id": "walk", "rule": "no_parking_motor", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]},
            ],
        }
    ],
}


POLYGON = "cameras[0].zones[0].polygon"


def with_change(path: str, value: Any) -> dict[str, Any]:
    """BASE with one field set; path like 'cameras.0.zones.0.polygon'."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def test_committed_example_loads_with_every_rule_kind() -> None:
    registry = load_cameras(CONFIGS / "cameras.yaml", TAXONOMY)
    assert len(registry) >= 2
    rules = {zone.rule.name for camera in registry for zone in camera.zones}
    assert {"no_parking_motor", "no_parking_non_motor", "shop_front", "bin_area", "flyer_wall"} <= rules
    assert any(zone.rule.detect == "occupancy" for camera in registry for zone in camera.zones)
    for camera in registry:
        assert camera.grid_code is not None and camera.grid_code.startswith("410103")


def test_zone_fields_override_their_rule_preset() -> None:
    data = with_change("cameras.0.zones.0", {**BASE["cameras"][0]["zones"][0], "min_dwell_s": 5})
    zone = parse_cameras(data, taxonomy=TAXONOMY).get("cam-1").zones[0]
    assert (
        zone.rule.min_dwell_s == 5 and zone.rule.classes == ("car",) and zone.rule.anchor == "bottom_center"
    )


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (
            "cameras.0.zones.0.polygon",
            [[0, 0], [1.2, 0], [1, 1]],
            POLYGON,
            "outside 0..1",
        ),
        (
            "cameras.0.zones.0.polygon",
            [[0, 0], [1, 1], [1, 0], [0, 1]],
            POLYGON,
            "crosses",
        ),
        ("cameras.0.zones.0.polygon", [[0, 0], [1, 1]], POLYGON, "at least 3"),
        ("cameras.0.zones.0.rule", "no_such_rule", "cameras[0].zones[0].rule", "unknown rule"),
        ("rules.no_parking_motor.classes", ["cat"], "rules.no_parking_motor.classes", "not in the taxonomy"),
        ("rules.shop_front.event", "shop_overfow", "rules.shop_front.event", "not in the taxonomy"),
        ("rules.shop_front.min_area", None, "rules.shop_front", "min_area"),
        ("rules.no_parking_motor.schedule", ["7:00-25:00"], "rules.no_parking_motor.schedule", "outside"),
        ("rules.no_parking_motor.anchor", "top_middle", "rules.no_parking_motor.anchor", "not one of"),
        ("cameras.0.stream", "ftp://cam/1", "cameras[0].stream", "scheme 'ftp'"),
        ("cameras.0.lat", 134.0, "cameras[0].lat", "less than or equal"),
        ("cameras.0.grid_code", "4101-03", "cameras[0].grid_code", "pattern"),
        # a camera's id is kept in a database column of 64 characters
        ("cameras.0.id", "c" * 65, "cameras[0].id", "at most 64 characters"),
        ("cameras.0.timezone", "Mars/Olympus", "cameras[0].timezone", "unknown timezone"),
        # `.inf` passed `ge=0` (a rule that never fires) and made GET /v1/cameras a 500; NaN was told
        # as a bound it broke
        ("rules.no_parking_motor.min_dwell_s", float("inf"), "rules.no_parking_motor.min_dwell_s", "finite"),
        ("cameras.0.lat", float("nan"), "cameras[0].lat", "finite"),
        # YAML's "\ud800" escape is half a character: loaded, GET /v1/cameras failed to encode it (500)
        ("cameras.0.name", "\ud800", "cameras[0].name", "lone surrogate"),
        ("cameras.0.zones.0.name", "a\0b", "cameras[0].zones[0].name", "NUL"),
        ("cameras.0.cases", {"verify": "sometimes"}, "cameras[0].cases.verify", "after_handled"),
        # a homography from crossed or flat corners: 8,000 m² for a 200 m² patch, or 0 m² everywhere
        (
            "cameras.0.ground",
            {"image": [[0, 0.5], [1, 0.5], [0, 1], [1, 1]], "ground_m": [[0, 0], [10, 0], [10, 20], [0, 20]]},
            "cameras[0].ground.image",
            "cross",
        ),
        (
            "cameras.0.ground",
            {"image": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]], "ground_m": [[0, 0], [10, 0], [10, 20], [5, 10]]},
            "cameras[0].ground.ground_m",
            "lie on a line",
        ),
    ],
)
def test_bad_config_names_file_and_field(path: str, value: Any, field: str, words: str) -> None:
    data = with_change(path, value)
    with pytest.raises(CameraConfigError) as error:
        parse_cameras(data, TAXONOMY, Path("cams.yaml"))
    message = str(error.value)
    assert message.startswith("cams.yaml: ") and field in message and words in message


def test_a_cameras_only_zone_refused_is_told_once() -> None:
    """A camera's one zone drawn off the picture was told twice, the second time as pydantic's
    `cameras[0].zones: Tuple should have at least 1 item after validation, not 0`: the file has a zone,
    and an operator went looking for a missing one."""
    data = with_change("cameras.0.zones.0.polygon", [[0, 0], [1.2, 0], [1, 1]])
    with pytest.raises(CameraConfigError) as error:
        parse_cameras(data, TAXONOMY, Path("cams.yaml"))
    assert str(error.value) == (
        f"cams.yaml: {POLYGON}: point (1.2, 0.0) is outside 0..1: zones are in normalised image coordinates"
    )


def test_yaml_nested_thousands_deep_is_a_config_error(tmp_path: Path) -> None:
    """PyYAML recurses per level: a RecursionError was a traceback at start and a 500 on reload."""
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras: " + "[" * 5000 + "]" * 5000, encoding="utf-8")
    with pytest.raises(CameraConfigError, match=rf"^{path}: not valid YAML: nested too deeply"):
        load_cameras(path, TAXONOMY)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (  # a camera block pasted and half edited: its first stream was silently dropped
            "cameras:\n  - id: a\n    stream: rtsp://10.0.0.1/a\n    stream: rtsp://10.0.0.2/b\n",
            "line 4, column 5: key 'stream' written twice (first on line 3)",
        ),
        ("cameras: []\ncameras: []\n", "line 2, column 1: key 'cameras' written twice (first on line 1)"),
    ],
)
def test_a_key_written_twice_is_a_config_error_not_the_last_one_winning(
    tmp_path: Path, text: str, said: str
) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CameraConfigError, match=re.escape(f"{path}: not valid YAML: {said}")):
        load_cameras(path, TAXONOMY)


def test_keys_a_merge_brings_in_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(
        "base: &base {fps: 2, stream: rtsp://a}\ncam: {<<: *base, stream: rtsp://b}\n", encoding="utf-8"
    )
    assert read_yaml(path)["cam"] == {"fps": 2, "stream": "rtsp://b"}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("**/*.yaml")), ids=lambda p: p.name)
def test_libyaml_reads_every_config_as_the_python_parser_does(path: Path) -> None:
    """read_yaml parses with libyaml (a cameras file reloads 2.5x faster) and the same constructor."""
    assert read_yaml(path) == yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)


def test_a_file_libyaml_refuses_is_told_in_the_python_parsers_words(tmp_path: Path) -> None:
    """libyaml says "found character that cannot start any token"; people are told which one."""
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n\t- id: a\n", encoding="utf-8")
    said = "line 2, column 1: found character '\\t' that cannot start any token"
    with pytest.raises(CameraConfigError, match=re.escape(f"{path}: not valid YAML: {said}")):
        load_cameras(path, TAXONOMY)


def test_legacy_14_digit_grid_code_is_accepted() -> None:
    assert (
        parse_cameras(with_change("cameras.0.grid_code", "41010300100100"), taxonomy=TAXONOMY)
        .get("cam-1")
        .grid_code
    )


def test_duplicate_zone_ids_and_m2_without_homography_are_refused(tmp_path: Path) -> None:
    zone = BASE["cameras"][0]["zones"][0]
    data = with_change("cameras.0.zones", [zone, zone])
    with pytest.raises(CameraConfigError, match="zone ids used twice: walk"):
        parse_cameras(data, taxonomy=TAXONOMY)
    occupancy = {
        "id": "shop",
        "rule": "shop_front",
        "polygon": zone["polygon"],
        "min_area": None,
        "min_area_m2": 2,
    }
    with pytest.raises(CameraConfigError, match="min_area_m2 needs the camera's 'ground'"):
        parse_cameras(with_change("cameras.0.zones", [occupancy]), taxonomy=TAXONOMY)
    broken = tmp_path / "cameras.yaml"
    broken.write_text("cameras: [\n", encoding="utf-8")
    with pytest.raises(CameraConfigError, match=f"{broken}: not valid YAML"):
        load_cameras(broken, taxonomy=TAXONOMY)


def test_unknown_camera_lists_the_configured_ones(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    with pytest.raises(UnknownCameraError, match=r"unknown camera 'cam-9' \(configured: cam-1\)"):
        load_cameras(path, taxonomy=TAXONOMY).get("cam-9")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("windows", "now", "since"),
    [
        (["07:00-22:00"], at(6, 6, 59), None),
        (["07:00-22:00"], at(6, 7, 0), at(6, 7, 0)),
        (["07:00-22:00"], at(6, 21, 59), at(6, 7, 0)),
        (["07:00-22:00"], at(6, 22, 0), None),
        (["22:00-06:00"], at(6, 2, 0), at(5, 22, 0)),  # overnight: began yesterday evening
        (["22:00-06:00"], at(6, 23, 0), at(6, 22, 0)),
        (["22:00-06:00"], at(6, 12, 0), None),
        (["07:00-12:00", "14:00-18:00"], at(6, 13, 0), None),  # lunch break
        (["07:00-12:00", "11:00-18:00"], at(6, 17, 0), at(6, 7, 0)),  # overlapping windows merge
    ],
)
def test_schedule_window_start(windows: list[str], now: datetime, since: datetime | None) -> None:
    assert Schedule.parse(windows).active_since(now) == since


def test_all_day_schedule_never_restarts_at_midnight() -> None:
    schedule = Schedule.parse(["00:00-24:00"])
    assert schedule.always
    start = schedule.active_since(at(6, 0, 1))
    assert start is not None and start < at(6, 0, 1) - timedelta(days=365)


@pytest.mark.parametrize(
    ("polygon", "size", "pixels"),
    [
        ([(0, 0), (1, 0), (1, 1)], (640, 360), [[0, 0], [640, 0], [640, 360]]),
        ([(0.5, 0.5), (0.75, 0.5), (0.75, 1.0)], (1920, 1080), [[960, 540], [1440, 540], [1440, 1080]]),
        ([(0.1, 0.1), (0.2, 0.1), (0.2, 0.2)], (101, 51), [[10, 5], [20, 5], [20, 10]]),
    ],
)
def test_pixel_polygon_scales_normalised_points(
    polygon: list[tuple[float, float]], size: tuple[int, int], pixels: list[list[int]]
) -> None:
    assert pixel_polygon(polygon, size).tolist() == pixels


def test_polygon_mask_covers_the_right_fraction() -> None:
    mask = polygon_mask([(0, 0.5), (1, 0.5), (1, 1), (0, 1)], (200, 100))
    assert mask.shape == (100, 200)
    assert mask[:49].sum() == 0 and mask[51:].all()


def _zone(anchor: str) -> FrameZone:
    data = with_change("rules.no_parking_motor.anchor", anchor)
    return FrameZone(parse_cameras(data, taxonomy=TAXONOMY).get("cam-1").zones[0])


@pytest.mark.parametrize(
    ("anchor", "box", "inside"),
    [
        ("bottom_center", (0.4, 0.3, 0.6, 0.6), True),  # stands on the zone (lower half)
        ("bottom_center", (0.4, 0.1, 0.6, 0.45), False),  # wholly above it
        ("center", (0.4, 0.3, 0.6, 0.6), False),  # centre at y 0.45: above the zone
        ("center", (0.4, 0.5, 0.6, 0.9), True),
        ("top_left", (0.0, 0.55, 0.1, 0.7), True),
    ],
)
@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)])
def test_trigger_uses_the_rule_anchor_at_any_frame_size(
    anchor: str, box: tuple[float, ...], inside: bool, size: tuple[int, int]
) -> None:
    zone = _zone(anchor)
    xyxy = np.array([box]) * np.array([size[0], size[1], size[0], size[1]])
    assert zone.trigger(sv.Detections(xyxy=xyxy), size).tolist() == [inside]


def test_changed_frame_size_rebuilds_the_zone() -> None:
    zone = _zone("bottom_center")
    box = np.array([[0.4, 0.3, 0.6, 0.6]])
    assert zone.trigger(sv.Detections(xyxy=box * [640, 360, 640, 360]), (640, 360)).tolist() == [True]
    # the same pixel box on a frame twice as large stands in the upper half: outside
    assert zone.trigger(sv.Detections(xyxy=box * [640, 360, 640, 360]), (1280, 720)).tolist() == [False]
    assert zone.pixels((1280, 720)).max(axis=0).tolist() == [1280, 720]
    assert zone.trigger(sv.Detections.empty(), (1280, 720)).tolist() == []
