"""Unit grids: codes, the example layout, point lookup at edges and vertices, areas, distances."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from configured import CONFIGS

from serve.cases.grids import (
    EARTH_RADIUS_M,
    GridError,
    area_km2,
    haversine_m,
    load_grids,
    parse_grid_code,
    tiling_problems,
)

EXAMPLE = CONFIGS / "grids.example.geojson"


def square(lon: float, lat: float, size: float) -> list[list[list[float]]]:
    """A lon/lat square ring; corners rounded so that neighbours share exactly equal coordinates."""
    east, north = round(lon + size, 9), round(lat + size, 9)
    return [[[lon, lat], [east, lat], [east, north], [lon, north], [lon, lat]]]


def write_layout(path: Path, cells: list[tuple[str, list[list[list[float]]]]]) -> Path:
    features = [
        {
            "type": "Feature",
            "properties": {"code": code},
            "geometry": {"type": "Polygon", "coordinates": ring},
        }
        for code, ring in cells
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("code", "parts", "legacy"),
    [
        ("410103001001001", ("410103", "001", "001", "001"), False),
        ("41010300100101", ("410103", "001", "001", "01"), True),
    ],
)
def test_grid_codes_accepted(code: str, parts: tuple[str, ...], legacy: bool) -> None:
    parsed = parse_grid_code(code)
    assert (parsed.county, parsed.street, parsed.community, parsed.sequence) == parts
    assert parsed.legacy is legacy


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("4101030010010", "13 digits"),
        ("4101030010010011", "16 digits"),
        ("41010300100100A", "digits only"),
        ("41010300100100１", "digits only"),  # a full-width digit
        ("000000001001001", "county"),
        ("", "digits only"),
    ],
)
def test_grid_codes_refused(code: str, message: str) -> None:
    with pytest.raises(GridError, match=message):
        parse_grid_code(code)


def test_example_layout_tiles_without_gaps_or_overlaps() -> None:
    grids = load_grids(EXAMPLE)
    assert len(grids) >= 6
    assert tiling_problems(grids) == []
    for grid in grids:
        assert parse_grid_code(grid.code).county == "410103"
        assert len(grid.code) == 15
        assert grid.street and grid.community
        assert 0.005 < grid.area_km2 < 0.02  # "万米单元网格": about 10,000 m²
        assert (
            grids.locate(grid.geometry.representative_point().y, grid.geometry.representative_point().x)
            == grid
        )
    lon_min, lat_min, lon_max, lat_max = (
        min(g.geometry.bounds[0] for g in grids),
        min(g.geometry.bounds[1] for g in grids),
        max(g.geometry.bounds[2] for g in grids),
        max(g.geometry.bounds[3] for g in grids),
    )
    assert 34.6 < lat_min < lat_max < 34.8 and 113.5 < lon_min < lon_max < 113.7


#   lat 1.002 +--------+--------+
#             | ...002 | ...001 |      codes not in west-to-east order, so that "lowest code"
#   lat 1.001 +--------+--------+      cannot be confused with "western grid"
#             | ...004 | ...003 |
#   lat 1.000 +--------+--------+
#          lon 1.000  1.001  1.002
LAYOUT = [
    ("410103001001002", square(1.000, 1.001, 0.001)),
    ("410103001001001", square(1.001, 1.001, 0.001)),
    ("410103001001004", square(1.000, 1.000, 0.001)),
    ("410103001001003", square(1.001, 1.000, 0.001)),
]


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (1.0015, 1.0005, "410103001001002"),  # interiors
        (1.0015, 1.0015, "410103001001001"),
        (1.0005, 1.0005, "410103001001004"),
        (1.0005, 1.0015, "410103001001003"),
        (1.0015, 1.001, "410103001001001"),  # shared edge 002|001: the lower code
        (1.0005, 1.001, "410103001001003"),  # shared edge 004|003
        (1.001, 1.0005, "410103001001002"),  # shared edge 002/004 (north/south)
        (1.001, 1.0015, "410103001001001"),  # shared edge 001/003
        (1.001, 1.001, "410103001001001"),  # the vertex all four share
        (1.002, 1.0005, "410103001001002"),  # outer boundary belongs to its only grid
        (1.0, 1.002, "410103001001003"),  # outer corner
        (1.0025, 1.0005, None),  # outside every grid
        (0.9999999, 1.0005, None),
    ],
)
def test_lookup_at_interiors_edges_and_vertices(
    tmp_path: Path, lat: float, lon: float, expected: str | None
) -> None:
    grids = load_grids(write_layout(tmp_path / "grids.geojson", LAYOUT))
    found = grids.locate(lat, lon)
    assert (found.code if found else None) == expected


def test_lookup_at_the_shared_vertices_of_the_example() -> None:
    """Every vertex of the example goes to the lowest code among the grids that share it."""
    grids = load_grids(EXAMPLE)
    sharing: dict[tuple[float, float], set[str]] = {}
    for grid in grids:
        for lon, lat in grid.geometry.exterior.coords:
            sharing.setdefault((lat, lon), set()).add(grid.code)
    assert max(len(codes) for codes in sharing.values()) == 4  # inner vertices join four grids
    for (lat, lon), codes in sharing.items():
        found = grids.locate(lat, lon)
        assert found is not None and found.code == min(codes)


@pytest.mark.parametrize("lat", [0.0, 34.72, 60.0])
def test_area_matches_side_lengths(lat: float) -> None:
    """A 0.001° square's area equals the product of its sides measured along the sphere."""
    ring = square(113.63, lat, 0.001)
    expected = haversine_m(lat, 113.63, lat + 0.001, 113.63) * haversine_m(
        lat + 0.0005, 113.63, lat + 0.0005, 113.631
    )
    got = area_km2(load_grid_geometry(ring)) * 1e6
    assert got == pytest.approx(expected, rel=1e-4)


def load_grid_geometry(ring: list[list[list[float]]]) -> Any:
    from shapely.geometry import shape

    return shape({"type": "Polygon", "coordinates": ring})


@pytest.mark.parametrize(
    ("a", "b", "metres"),
    [
        ((34.72, 113.63), (34.72, 113.63), 0.0),
        ((0.0, 0.0), (1.0, 0.0), EARTH_RADIUS_M * math.pi / 180),
        ((0.0, 0.0), (0.0, 1.0), EARTH_RADIUS_M * math.pi / 180),
        ((34.72, 113.63), (34.72 + 50 / 111_195.08, 113.63), 50.0),
        ((89.9, 0.0), (89.9, 180.0), EARTH_RADIUS_M * math.radians(0.2)),
    ],
)
def test_haversine(a: tuple[float, float], b: tuple[float, float], metres: float) -> None:
    assert haversine_m(*a, *b) == pytest.approx(metres, abs=0.01)


def feature(code: Any, geometry: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": {} if code is None else {"code": code}, "geometry": geometry}


POLY = {"type": "Polygon", "coordinates": square(113.63, 34.72, 0.001)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read grid GeoJSON"),
        (json.dumps({"type": "Feature"}), "FeatureCollection"),
        (json.dumps({"type": "FeatureCollection", "features": []}), "non-empty"),
        (
            json.dumps({"type": "FeatureCollection", "features": [feature(None, POLY)]}),
            r"features\[0\].properties.code",
        ),
        (
            json.dumps({"type": "FeatureCollection", "features": [feature("4101", POLY)]}),
            r"features\[0\].properties.code",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [feature("410103001001001", {"type": "Point", "coordinates": [1, 1]})],
                }
            ),
            "Polygon or MultiPolygon",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        feature(
                            "410103001001001",
                            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
                        )
                    ],
                }
            ),
            "invalid polygon",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        feature(
                            "410103001001001",
                            {"type": "Polygon", "coordinates": square(34.72, 113.63, 0.001)},
                        )
                    ],
                }
            ),
            r"\(34.72, 113.63\) read as \[lat, lon\]; GeoJSON writes \[lon, lat\]",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [feature("410103001001001", POLY), feature("410103001001001", POLY)],
                }
            ),
            "used twice",
        ),
    ],
)
def test_bad_grid_files_name_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "grids.geojson"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GridError, match=message) as caught:
        load_grids(path)
    assert str(path) in str(caught.value)


def test_tiling_problems_finds_gaps(tmp_path: Path) -> None:
    ring_with_hole: list[tuple[str, list[list[list[float]]]]] = [
        (f"41010300100100{i + 1}", square(round(1.0 + dx * 0.001, 9), round(1.0 + dy * 0.001, 9), 0.001))
        for i, (dx, dy) in enumerate([(0, 0), (1, 0), (2, 0), (0, 1), (2, 1), (0, 2), (1, 2), (2, 2)])
    ]
    problems = tiling_problems(load_grids(write_layout(tmp_path / "b.geojson", ring_with_hole)))
    assert len(problems) == 1 and "gap" in problems[0]


@pytest.mark.parametrize(
    ("second", "m2"),
    [
        (square(1.0005, 1.0, 0.001), 6_154),  # half of the first grid, 111 m x 55 m
        (square(1.0002, 1.0002, 0.0005), 3_077),  # wholly inside the first one
        (square(1.000_99, 1.0, 0.001), 123),  # 1 m wide along their shared edge
    ],
    ids=["half", "inside", "strip"],
)
def test_overlapping_grids_are_refused_naming_both(
    tmp_path: Path, second: list[list[list[float]]], m2: float
) -> None:
    """Two grids holding the same place were accepted, the lower code silently winning it."""
    path = write_layout(
        tmp_path / "grids.geojson",
        [("410103001001001", square(1.0, 1.0, 0.001)), ("410103001001002", second)],
    )
    with pytest.raises(
        GridError, match=r"grids 410103001001001 and 410103001001002 overlap by ([\d.]+) m²"
    ) as caught:
        load_grids(path)
    assert str(path) in str(caught.value)
    assert float(caught.value.args[0].split("overlap by ")[1].split(" ")[0]) == pytest.approx(m2, rel=0.01)


def test_shared_edges_and_floating_point_slivers_are_no_overlap(tmp_path: Path) -> None:
    """Neighbours whose shared edge was rounded apart (1e-9 degrees, 0.1 mm: a sliver of 0.01 m²) tile."""
    layout = [
        ("410103001001001", square(1.0, 1.0, 0.001)),
        (
            "410103001001002",
            [
                [
                    [1.000_999_999, 1.0],
                    [1.002, 1.0],
                    [1.002, 1.001],
                    [1.000_999_999, 1.001],
                    [1.000_999_999, 1.0],
                ]
            ],
        ),
        ("410103001001003", square(1.0, 1.001, 0.001)),  # shares an edge and a vertex only
    ]
    grids = load_grids(write_layout(tmp_path / "grids.geojson", layout))
    assert len(grids) == 3 and tiling_problems(grids) == []


def test_the_service_names_an_overlapping_layout_in_one_line(tmp_path: Path) -> None:
    """The grids load at `streetorder serve`'s start: a layout refused is one line, exit 1."""
    import os
    import subprocess
    import sys

    path = write_layout(
        tmp_path / "grids.geojson",
        [("410103001001001", square(1.0, 1.0, 0.001)), ("410103001001002", square(1.0005, 1.0, 0.001))],
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "serve.cli",
            "serve",
            "--db",
            f"sqlite:///{tmp_path / 'cases.db'}",
            "--port",
            "0",
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "STREETORDER_GRIDS": str(path),
            "STREETORDER_SECRET": "tests-only-secret-0123456789",
        },
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1, done.stderr
    assert (
        f"streetorder serve: {path}: " in done.stderr and "410103001001001 and 410103001001002" in done.stderr
    )


@pytest.mark.parametrize(
    ("ring", "message"),
    [
        # Urumqi as [lat, lon]: both within ±90/±180, so it loaded, in the Arctic, and every photo
        # taken in the city was "outside the grids"
        (square(43.82, 87.61, 0.001), r"\(43.82, 87.61\) read as \[lat, lon\].*swap each pair"),
        # CGCS2000 Gauss-Krüger metres with no crs member: "must be [lon, lat] degrees" said nothing of it
        (square(500_000.0, 3_400_000.0, 100.0), r"projected metres .*-t_srs EPSG:4326"),
        (square(-200.0, 10.0, 0.001), r"\(-200, 10\) are not \[lon, lat\] degrees"),
    ],
    ids=["lat-lon-in-xinjiang", "gauss-krueger-metres", "out-of-range"],
)
def test_coordinates_in_another_order_or_unit_are_named_as_such(
    tmp_path: Path, ring: list[list[list[float]]], message: str
) -> None:
    path = write_layout(tmp_path / "网格.geojson", [("650102001001001", ring)])
    with pytest.raises(GridError, match=rf"网格.geojson: features\[0\]\.geometry: .*{message}"):
        load_grids(path)


@pytest.mark.parametrize("name", ["EPSG:4490", "urn:ogc:def:crs:EPSG::4490", "CGCS2000"])
def test_cgcs2000_degrees_are_read_as_wgs84(tmp_path: Path, name: str) -> None:
    """CGCS2000 lon/lat (Tianditu, national GIS exports) is WGS-84 within a metre: it was refused,
    sending the bureau to reproject for nothing."""
    path = write_layout(tmp_path / "grids.geojson", [("510107003001001", square(104.048, 30.642, 0.001))])
    data = json.loads(path.read_text(encoding="utf-8"))
    data["crs"] = {"type": "name", "properties": {"name": name}}
    path.write_text(json.dumps(data), encoding="utf-8")
    grid = load_grids(path).locate(30.6425, 104.0485)
    assert grid is not None and grid.code == "510107003001001"


def test_a_geojson_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Notepad and GIS exports on Windows write a UTF-8 BOM: it was "cannot read grid GeoJSON"."""
    path = write_layout(
        tmp_path / "武侯区网格.geojson", [("510107003001001", square(104.048, 30.642, 0.001))]
    )
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert [g.code for g in load_grids(path)] == ["510107003001001"]


def test_many_codes_used_twice_are_named_ten_at_a_time(tmp_path: Path) -> None:
    """A layout whose codes all repeat (a column pasted twice) was named code by code in one line of
    every code, counted with list.count per grid (seconds on a city's layout)."""
    cells = [(f"510107003001{i % 12 + 1:03d}", square(104.0 + i * 0.001, 30.6, 0.001)) for i in range(24)]
    path = write_layout(tmp_path / "grids.geojson", cells)
    with pytest.raises(GridError, match=r"used twice: 510107003001001, .*510107003001010 \(and 2 more\)$"):
        load_grids(path)
