"""WGS-84 <-> GCJ-02 <-> BD-09: reference values, round trips, the passthrough outside China, and
grid files drawn on a Chinese basemap."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from configured import CONFIGS
from test_grids import square, write_layout

from serve.cases.coords import (
    bd09_to_gcj02,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    geometry_from_wgs84,
    position_to_wgs84,
    to_wgs84,
    wgs84_to_gcj02,
)
from serve.cases.grids import GridError, haversine_m, load_grids

# wandergis/coordtransform (Python coordTransform_py and JS coordtransform), README examples for
# the input (116.404, 39.915); the same digits appear in many ports of it.
FORWARD = [
    (wgs84_to_gcj02, (116.41024449916938, 39.91640428150164)),
    (gcj02_to_bd09, (116.41036949371029, 39.92133699351021)),
    (lambda lon, lat: from_wgs84(lon, lat, "bd09"), (116.41662724378733, 39.922699552216216)),
]
# The same README's inverses are one-step approximations: ours iterate, so they agree only to
# centimetres, and only ours lands back on the input.
ONE_STEP = [
    (gcj02_to_wgs84, wgs84_to_gcj02, (116.39775550083061, 39.91359571849836)),
    (bd09_to_gcj02, gcj02_to_bd09, (116.39762729119315, 39.90865673957631)),
]
CITIES = {  # WGS-84 (lon, lat)
    "Beijing": (116.3975, 39.9087),
    "Shanghai": (121.4737, 31.2304),
    "Guangzhou": (113.2644, 23.1291),
    "Shenzhen": (114.0579, 22.5431),
    "Chengdu": (104.0665, 30.5723),
    "Zhengzhou": (113.6254, 34.7466),
    "Harbin": (126.5350, 45.8038),
    "Urumqi": (87.6168, 43.8256),
    "Lhasa": (91.1409, 29.6456),
    "Kunming": (102.8329, 24.8801),
    "Haikou": (110.3312, 20.0311),
}


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_m(float(a[1]), float(a[0]), float(b[1]), float(b[0]))


@pytest.mark.parametrize(("convert", "expected"), FORWARD)
def test_forward_matches_the_reference_implementation(convert, expected) -> None:  # type: ignore[no-untyped-def]
    lon, lat = convert(116.404, 39.915)
    assert (float(lon), float(lat)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("inverse", "forward", "one_step"), ONE_STEP)
def test_inverses_iterate_past_the_one_step_approximation(inverse, forward, one_step) -> None:  # type: ignore[no-untyped-def]
    lon, lat = inverse(116.404, 39.915)
    assert metres((lon, lat), one_step) < 0.2
    assert metres(forward(lon, lat), (116.404, 39.915)) < 0.01
    assert metres(forward(*one_step), (116.404, 39.915)) > 0.01


@pytest.mark.parametrize("city", CITIES)
@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_round_trips_over_each_city(city: str, crs: str) -> None:
    lon0, lat0 = CITIES[city]
    lons, lats = np.meshgrid(np.linspace(lon0 - 0.2, lon0 + 0.2, 9), np.linspace(lat0 - 0.2, lat0 + 0.2, 9))
    x, y = from_wgs84(lons.ravel(), lats.ravel(), crs)  # type: ignore[arg-type]
    shift = min(metres((a, b), (c, d)) for a, b, c, d in zip(lons.ravel(), lats.ravel(), x, y, strict=True))
    assert shift > 100  # really moved: GCJ-02 is hundreds of metres off, BD-09 more
    back_lon, back_lat = to_wgs84(x, y, crs)  # type: ignore[arg-type]
    worst = max(
        metres((a, b), (c, d))
        for a, b, c, d in zip(lons.ravel(), lats.ravel(), back_lon, back_lat, strict=True)
    )
    assert worst < 0.05


@pytest.mark.parametrize(
    "place", [(-0.1246, 51.5007), (139.6917, 35.6895), (-74.0060, 40.7128), (151.2, -33.9)]
)
@pytest.mark.parametrize("crs", ["gcj02"])
def test_outside_china_positions_pass_through(place: tuple[float, float], crs: str) -> None:
    assert tuple(map(float, from_wgs84(*place, crs))) == place  # type: ignore[arg-type]
    assert tuple(map(float, to_wgs84(*place, crs))) == place  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (math.nan, 113.6),
        (34.7, math.nan),
        (math.inf, 113.6),
        (34.7, -math.inf),
        (90.004, 113.6),
        (34.7, 180.5),
    ],
)
@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_non_positions_pass_through_to_be_refused(lat: float, lon: float, crs: str) -> None:
    """NaN, infinities and out-of-range degrees come out as they went in (BD-09's formula has no
    box and would pull 90.004° back to a valid latitude): the intake's range check refuses them."""
    got = position_to_wgs84(lat, lon, crs)  # type: ignore[arg-type]
    assert np.array_equal(got, (lat, lon), equal_nan=True)


GCJ_SQUARE = "410103001001001"


def test_a_grid_drawn_on_amap_is_stored_as_wgs84(tmp_path: Path) -> None:
    """A grid drawn on AMap around a WGS-84 point: read as WGS-84 the point falls outside it."""
    lon, lat = 113.6254, 34.7466
    gx, gy = (float(v) for v in wgs84_to_gcj02(lon, lat))
    path = write_layout(tmp_path / "grids.geojson", [(GCJ_SQUARE, square(gx - 0.001, gy - 0.001, 0.002))])
    assert load_grids(path).locate(lat, lon) is None
    assert load_grids(path, "gcj02").locate(lat, lon) is not None
    stored = load_grids(path, "gcj02").get(GCJ_SQUARE)
    assert stored is not None
    centre = stored.geometry.centroid
    assert metres((centre.x, centre.y), (lon, lat)) < 1


@pytest.mark.parametrize(("name", "found"), [("GCJ-02", True), ("bd09", False), ("EPSG:4326", False)])
def test_the_files_own_crs_member_is_read(tmp_path: Path, name: str, found: bool) -> None:
    lon, lat = 113.6254, 34.7466
    gx, gy = (float(v) for v in wgs84_to_gcj02(lon, lat))
    path = write_layout(tmp_path / "grids.geojson", [(GCJ_SQUARE, square(gx - 0.001, gy - 0.001, 0.002))])
    data = json.loads(path.read_text())
    data["crs"] = {"type": "name", "properties": {"name": name}}
    path.write_text(json.dumps(data))
    assert (load_grids(path).locate(lat, lon) is not None) is found


@pytest.mark.parametrize(
    ("crs", "declared", "message"),
    [
        ({"type": "name", "properties": {"name": "EPSG:3857"}}, None, "'EPSG:3857' is not lon/lat degrees"),
        ({"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4547"}}, None, "reproject"),
        ({"type": "link", "properties": {"href": "x.prj"}}, None, "only a named CRS"),
        ({"type": "name", "properties": ["EPSG:4326"]}, None, "only a named CRS"),  # was AttributeError
        ({"type": "name", "properties": {"name": "gcj02"}}, "bd09", "the file says 'gcj02' but bd09"),
    ],
)
def test_other_crs_are_refused_not_read_as_degrees(
    tmp_path: Path, crs: object, declared, message: str
) -> None:  # type: ignore[no-untyped-def]
    path = write_layout(tmp_path / "grids.geojson", [(GCJ_SQUARE, square(113.62, 34.74, 0.002))])
    data = json.loads(path.read_text())
    data["crs"] = crs
    path.write_text(json.dumps(data))
    with pytest.raises(GridError, match=message) as caught:
        load_grids(path, declared)
    assert str(path) in str(caught.value)


def test_geometry_out_for_a_gcj02_map_lands_where_amap_draws_it() -> None:
    grids = load_grids(CONFIGS / "grids.example.geojson")
    grid = next(iter(grids))
    drawn = geometry_from_wgs84(grid.geometry, "gcj02")
    x, y = (float(v) for v in wgs84_to_gcj02(*grid.geometry.exterior.coords[0]))
    assert drawn.exterior.coords[0] == pytest.approx((x, y), abs=1e-12)
