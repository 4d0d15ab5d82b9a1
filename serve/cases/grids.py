"""Unit grids (单元网格): which grid a position lies in, and how large each grid is.

A bureau's grids come as GeoJSON polygons (lon/lat degrees) with the grid code and the street and
community in the properties. Grids drawn on a Chinese basemap are GCJ-02 (AMap, Tencent) or BD-09
(Baidu), 300-700 m off WGS-84: the file's legacy `crs` member or the declared system (the
`grids_crs` setting, `scan --grids-crs`) says so, and they are converted to WGS-84 when read
(`serve.cases.coords`); a projected or unknown CRS is refused rather than read as degrees.

The code has 15 digits: county division (6, GB/T 2260) + street (3) + community (3) + sequence
(3); legacy systems use 14 (2-digit sequence) and are accepted as they are, never rewritten, so
codes still match the bureau's other systems.

Points on a shared edge or vertex touch several grids. The rule, so that the same photo always
lands in the same grid: a point belongs to the grid whose interior holds it; on a boundary, to the
grid with the lowest code among those it touches. Grids tile their communities with no overlaps:
a layout where two grids share more than `OVERLAP_TOLERANCE_M2` (1 m², against some 10,000 m² a
grid) is refused when loaded, naming both codes; shared edges and the floating-point slivers of
coordinates rounded apart are far below it. Without the check a place two grids hold went silently
to the lower code, whatever the bureau meant.

Areas are in km² (problems are ranked per unit area), computed on the sphere with an equal-area
projection: within about 0.5 % of the WGS-84 ellipsoid, far finer than the grids are drawn.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry

from serve.cases.coords import COORD_SYSTEMS, CoordSystem, geometry_to_wgs84
from vision.core.yamlfile import ConfigError

EARTH_RADIUS_M = 6_371_008.8  # mean radius: haversine distances and spherical areas
OVERLAP_TOLERANCE_M2 = 1.0  # two grids sharing more than this are refused; gaps are reported above it


class GridError(ConfigError):
    """A grid file or code that cannot be used; the message names the file, feature and field."""


@dataclass(frozen=True)
class GridCode:
    county: str
    street: str
    community: str
    sequence: str

    @property
    def legacy(self) -> bool:
        return len(self.sequence) == 2


def parse_grid_code(code: str) -> GridCode:
    """Split a 15-digit (or legacy 14-digit) unit grid code, refusing anything else."""
    if not isinstance(code, str) or not code.isascii() or not code.isdigit():
        raise GridError(f"grid code {code!r} must be digits only")
    if len(code) not in (14, 15):
        raise GridError(f"grid code {code!r} has {len(code)} digits (15, or legacy 14, expected)")
    if code[:6] == "000000" or code[2:6] == "0000":
        raise GridError(f"grid code {code!r} does not start with a county division code")
    return GridCode(county=code[:6], street=code[6:9], community=code[9:12], sequence=code[12:])


@dataclass(frozen=True)
class Grid:
    code: str
    name: str
    street: str | None
    community: str | None
    area_km2: float
    geometry: BaseGeometry = field(compare=False, repr=False)
    properties: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class GridIndex:
    """All unit grids of a layout, with a spatial index for point lookups."""

    def __init__(self, grids: list[Grid], source: str = "<memory>"):
        # counted once (codes.count per code took 9 s on a city's 22,500 grids), the first ten named
        if repeated := sorted(code for code, n in Counter(g.code for g in grids).items() if n > 1):
            more = f" (and {len(repeated) - 10} more)" if len(repeated) > 10 else ""
            raise GridError(f"{source}: grid codes used twice: {', '.join(repeated[:10])}{more}")
        self.source = source
        self._grids = sorted(grids, key=lambda g: g.code)
        self._by_code = {g.code: g for g in self._grids}
        self._tree = shapely.STRtree([g.geometry for g in self._grids])
        if found := overlaps(self._grids, self._tree):
            listed = "; ".join(f"grids {a} and {b} overlap by {m2:.1f} m²" for a, b, m2 in found[:10])
            more = f" (and {len(found) - 10} more)" if len(found) > 10 else ""
            raise GridError(
                f"{source}: unit grids must not overlap (more than {OVERLAP_TOLERANCE_M2:g} m²): "
                f"{listed}{more}; fix the layout so that each place has one grid"
            )

    def __len__(self) -> int:
        return len(self._grids)

    def __iter__(self) -> Iterator[Grid]:
        return iter(self._grids)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(lon_min, lat_min, lon_max, lat_max) of the whole layout."""
        lon_min, lat_min, lon_max, lat_max = (float(v) for v in shapely.total_bounds(self._tree.geometries))
        return lon_min, lat_min, lon_max, lat_max

    def get(self, code: str) -> Grid | None:
        return self._by_code.get(code)

    def locate(self, lat: float, lon: float) -> Grid | None:
        """The grid holding the point (lowest code on a shared boundary), or None outside all grids."""
        hits = self._tree.query(Point(lon, lat), predicate="intersects")
        if len(hits) == 0:
            return None
        return self._grids[int(min(hits))]  # grids are sorted by code, so the lowest index wins


def load_grids(path: Path | str, crs: CoordSystem | None = None) -> GridIndex:
    """Read a GeoJSON FeatureCollection of unit grid polygons (properties: code, street, community)
    in `crs` (else the file's `crs` member, else WGS-84); the grids kept are WGS-84."""
    path = Path(path)
    try:
        data = json.loads(
            path.read_text(encoding="utf-8-sig")
        )  # a BOM (Notepad, GIS exports on Windows) is no error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GridError(f"{path}: cannot read grid GeoJSON: {err}") from err
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise GridError(f"{path}: expected a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise GridError(f"{path}: 'features' must be a non-empty list")
    crs = _coord_system(data.get("crs"), crs, str(path))
    return GridIndex(
        [_grid_of(feature, f"{path}: features[{i}]", crs) for i, feature in enumerate(features)], str(path)
    )


_CRS_NAMES: dict[str, CoordSystem] = {
    "wgs84": "wgs84",
    "epsg:4326": "wgs84",
    "urn:ogc:def:crs:epsg::4326": "wgs84",
    "urn:ogc:def:crs:ogc:1.3:crs84": "wgs84",
    "crs84": "wgs84",
    # CGCS2000 lon/lat (Tianditu, the national GIS exports) agrees with WGS-84 to within a metre, far
    # finer than grids are drawn; refusing it sent bureaus to reproject for nothing
    "epsg:4490": "wgs84",
    "urn:ogc:def:crs:epsg::4490": "wgs84",
    "cgcs2000": "wgs84",
    "gcj02": "gcj02",
    "bd09": "bd09",
}


def _coord_system(member: Any, declared: CoordSystem | None, where: str) -> CoordSystem:
    """The file's coordinate system: its legacy GeoJSON `crs` member (2008 form, `{"type": "name",
    "properties": {"name": ...}}`) where it has one, which must agree with a declared one."""
    if member is None:
        return declared or "wgs84"
    properties = member.get("properties") if isinstance(member, dict) else None
    name = properties.get("name") if isinstance(properties, dict) else None
    if not isinstance(name, str):
        raise GridError(
            f"{where}: crs: only a named CRS is read ({{'type': 'name', 'properties': {{'name': ...}}}})"
        )
    found = _CRS_NAMES.get(name.strip().lower().replace("-", "").replace("_", ""))
    if found is None:
        raise GridError(
            f"{where}: crs: {name!r} is not lon/lat degrees in {', '.join(COORD_SYSTEMS)} "
            "(EPSG:4326, CRS84, CGCS2000 EPSG:4490, GCJ-02 or BD-09); reproject the grids to WGS-84 degrees "
            f"(ogr2ogr -f GeoJSON -t_srs EPSG:4326 out.geojson {Path(where).name})"
        )
    if declared is not None and declared != found:
        raise GridError(f"{where}: crs: the file says {name!r} but {declared} was declared; which is it?")
    return found


def _grid_of(feature: Any, where: str, crs: CoordSystem) -> Grid:
    if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
        raise GridError(f"{where}: a feature with 'properties' expected")
    props = feature["properties"]
    code = props.get("code")
    if code is None:
        raise GridError(f"{where}.properties.code: missing")
    try:
        parse_grid_code(str(code))
    except GridError as err:
        raise GridError(f"{where}.properties.code: {err}") from err
    try:
        geometry = shape(feature.get("geometry"))
    except Exception as err:  # shapely raises several types on malformed GeoJSON geometry
        raise GridError(f"{where}.geometry: not a GeoJSON geometry ({err})") from err
    if not isinstance(geometry, Polygon | MultiPolygon) or geometry.is_empty:
        raise GridError(f"{where}.geometry: a Polygon or MultiPolygon expected, got {geometry.geom_type}")
    if not geometry.is_valid:
        raise GridError(f"{where}.geometry: invalid polygon ({shapely.is_valid_reason(geometry)})")
    if problem := _not_lon_lat(geometry.bounds):
        raise GridError(f"{where}.geometry: {problem}")
    geometry = geometry_to_wgs84(geometry, crs)
    return Grid(
        code=str(code),
        name=str(props.get("name") or code),
        street=_optional_text(props.get("street")),
        community=_optional_text(props.get("community")),
        area_km2=area_km2(geometry),
        geometry=geometry,
        properties=dict(props),
    )


def _in_china(lon: float, lat: float) -> bool:
    return 73 <= lon <= 136 and 3 <= lat <= 54


def _not_lon_lat(bounds: tuple[float, float, float, float]) -> str | None:
    """What is wrong with a polygon's coordinates as GeoJSON's [lon, lat] degrees, or None.

    Projected metres and [lat, lon] pairs are named as such: "must be [lon, lat] degrees" left the
    bureau to guess which. A pair in China read the other way round lies in the Arctic or the Indian
    Ocean, so where only the swapped reading is in China (Xinjiang's [43.8, 87.6] passed the range
    check and put every photo outside the grids), the pairs are taken to be [lat, lon]."""
    lon_min, lat_min, lon_max, lat_max = bounds
    where = f"({lon_min:.6g}, {lat_min:.6g})"
    if max(abs(v) for v in bounds) > 1000:
        return (
            f"coordinates such as {where} are projected metres (a CGCS2000 Gauss-Krüger zone, EPSG:3857), "
            "not degrees: reproject to lon/lat (ogr2ogr -f GeoJSON -t_srs EPSG:4326 out.geojson in.geojson)"
        )
    swapped = _in_china(lat_min, lon_min) and _in_china(lat_max, lon_max)
    if not (-180 <= lon_min <= lon_max <= 180 and -90 <= lat_min <= lat_max <= 90) or (
        swapped and not (_in_china(lon_min, lat_min) and _in_china(lon_max, lat_max))
    ):
        if swapped:
            return (
                f"coordinates such as {where} read as [lat, lon]; GeoJSON writes [lon, lat] "
                "(longitude first): swap each pair"
            )
        return f"coordinates such as {where} are not [lon, lat] degrees (WGS-84, CGCS2000, GCJ-02 or BD-09)"
    return None


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def area_km2(geometry: BaseGeometry) -> float:
    """Area of a lon/lat polygon in km², by the sinusoidal (equal-area) projection on the sphere."""

    def project(coords: np.ndarray) -> np.ndarray:
        lat = np.radians(coords[:, 1])
        return np.column_stack((np.radians(coords[:, 0]) * np.cos(lat), lat)) * EARTH_RADIUS_M

    return float(shapely.transform(geometry, project).area) / 1e6


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS-84 points."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def overlaps(
    grids: list[Grid], tree: shapely.STRtree, tolerance_m2: float = OVERLAP_TOLERANCE_M2
) -> list[tuple[str, str, float]]:
    """(code, code, m²) of each pair of grids whose interiors share more than `tolerance_m2`, in
    code order. Only pairs whose interiors meet are intersected (neighbours that share an edge
    only are skipped at the cost of a predicate), so a city's layout loads in well under a second."""
    geometries = np.array([g.geometry for g in grids], dtype=object)
    first, second = tree.query(geometries, predicate="intersects")
    keep = first < second
    first, second = first[keep], second[keep]
    inside = shapely.relate_pattern(geometries[first], geometries[second], "T********")
    found = []
    for i, j in zip(first[inside], second[inside], strict=True):
        shared = area_km2(shapely.intersection(geometries[i], geometries[j])) * 1e6
        if shared > tolerance_m2:
            found.append((grids[i].code, grids[j].code, shared))
    return sorted(found)


def tiling_problems(index: GridIndex, tolerance_m2: float = OVERLAP_TOLERANCE_M2) -> list[str]:
    """Gaps inside the layout larger than `tolerance_m2` (overlaps are refused when it is loaded).

    Grids must tile their communities: a gap is a place no grid answers for.
    """
    union = shapely.union_all([g.geometry for g in index])
    problems = []
    for part in getattr(union, "geoms", [union]):
        for ring in part.interiors:
            gap = area_km2(Polygon(ring)) * 1e6
            if gap > tolerance_m2:
                x, y = ring.coords[0]
                problems.append(f"gap of {gap:.1f} m² between grids near ({y:.6f}, {x:.6f})")
    return problems
