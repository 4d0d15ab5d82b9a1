"""Chinese map coordinate systems at the edges: WGS-84 <-> GCJ-02 <-> BD-09.

Inside streetorder every position is WGS-84 (GPS, EXIF). Chinese maps are not: AMap (Gaode),
Tencent maps and WeChat's `wx.getLocation({type: 'gcj02'})` give GCJ-02, Baidu maps BD-09; taken
as WGS-84 they are 300-700 m off (the wrong unit grid, wrong duplicates). Data from them is
converted once where it comes in (grid files, reports, Open311) and positions are converted back
only for a map drawn on such tiles.

The formulas are the public ones every open implementation carries (e.g. wandergis/coordtransform,
googollee/eviltransform): GCJ-02 is WGS-84 shifted by a polynomial-and-sine offset scaled on the
Krasovsky ellipsoid (a = 6378245 m, e² = 0.00669342162296594323), applied only inside a box
around China (outside it, coordinates pass through unchanged); BD-09 is GCJ-02 rotated and
shifted by Baidu's constants. Neither has a closed inverse: the inverses here iterate the forward
formula to within 1e-9° (about 0.1 mm), where the usual one-step approximation errs by metres.

Functions take and return (lon, lat) in degrees, as GeoJSON orders them, and work on floats or
numpy arrays alike. A NaN, an infinity or a latitude beyond ±90° lies outside the box and passes
through unchanged, so the intake's own validation still refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, cast, get_args

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from vision.core.imageio import CoordSystem  # beside Position: vision's camera file names it too

COORD_SYSTEMS: tuple[CoordSystem, ...] = get_args(CoordSystem)

Degrees: TypeAlias = "float | np.ndarray"
_Convert: TypeAlias = "Callable[[Degrees, Degrees], tuple[np.ndarray, np.ndarray]]"

_A = 6378245.0  # Krasovsky 1940 semi-major axis, metres
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0  # Baidu's rotation constant
_TOLERANCE_DEG = 1e-9  # the inverses stop within this (about 0.1 mm)
_MAX_STEPS = 30


def in_china(lon: Degrees, lat: Degrees) -> np.ndarray:
    """Whether GCJ-02 shifts the point: the box the public implementations use (false for NaN)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    return (lon > 73.66) & (lon < 135.05) & (lat > 3.86) & (lat < 53.55)


def _offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    wave = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x)) + wave
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x)) + wave
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(rad) ** 2
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * np.sqrt(magic)) * np.pi)
    dlon = (dlon * 180.0) / (_A / np.sqrt(magic) * np.cos(rad) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: Degrees, lat: Degrees) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    inside = in_china(lon, lat)
    with np.errstate(invalid="ignore"):
        dlon, dlat = _offset(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def gcj02_to_bd09(lon: Degrees, lat: Degrees) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _inverse(forward: _Convert, lon: Degrees, lat: Degrees) -> tuple[np.ndarray, np.ndarray]:
    """Solve forward(x) = (lon, lat) by fixed-point steps x += target - forward(x): the offsets
    change by far less than a degree per degree, so each step gains several digits."""
    target_lon, target_lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x, y = target_lon, target_lat
    with np.errstate(invalid="ignore"):
        for _ in range(_MAX_STEPS):
            fx, fy = forward(x, y)
            ex, ey = target_lon - fx, target_lat - fy
            x, y = x + ex, y + ey
            if not np.any(
                np.maximum(np.abs(ex), np.abs(ey)) > _TOLERANCE_DEG
            ):  # NaN compares false: one step
                break
    return x, y


def gcj02_to_wgs84(lon: Degrees, lat: Degrees) -> tuple[np.ndarray, np.ndarray]:
    return _inverse(wgs84_to_gcj02, lon, lat)


def bd09_to_gcj02(lon: Degrees, lat: Degrees) -> tuple[np.ndarray, np.ndarray]:
    return _inverse(gcj02_to_bd09, lon, lat)


_TO_WGS84: dict[str, tuple[_Convert, ...]] = {
    "wgs84": (),
    "gcj02": (gcj02_to_wgs84,),
    "bd09": (bd09_to_gcj02, gcj02_to_wgs84),
}
_FROM_WGS84: dict[str, tuple[_Convert, ...]] = {
    "wgs84": (),
    "gcj02": (wgs84_to_gcj02,),
    "bd09": (wgs84_to_gcj02, gcj02_to_bd09),
}


def to_wgs84(lon: Degrees, lat: Degrees, crs: CoordSystem) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) given in `crs` as WGS-84."""
    return _through(_TO_WGS84[crs], lon, lat)


def from_wgs84(lon: Degrees, lat: Degrees, crs: CoordSystem) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 (lon, lat) as `crs` gives it: what a map on that system's tiles draws."""
    return _through(_FROM_WGS84[crs], lon, lat)


def _through(steps: tuple[_Convert, ...], lon: Degrees, lat: Degrees) -> tuple[np.ndarray, np.ndarray]:
    """The steps applied to the points that are degrees at all; the others (NaN, infinite, beyond
    ±90° or ±180°: BD-09's formula has no box and would move them) pass through unchanged."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    with np.errstate(invalid="ignore"):
        degrees = (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    x, y = lon, lat
    for step in steps:
        x, y = step(x, y)
    return np.where(degrees, x, lon), np.where(degrees, y, lat)


def position_to_wgs84(lat: float, lon: float, crs: CoordSystem) -> tuple[float, float]:
    """A (lat, lon) position given in `crs` as WGS-84 (lat, lon), in the order positions are kept."""
    x, y = to_wgs84(lon, lat, crs)
    return float(y), float(x)


def geometry_to_wgs84(geometry: BaseGeometry, crs: CoordSystem) -> BaseGeometry:
    return _transformed(geometry, to_wgs84, crs)


def geometry_from_wgs84(geometry: BaseGeometry, crs: CoordSystem) -> BaseGeometry:
    return _transformed(geometry, from_wgs84, crs)


def _transformed(
    geometry: BaseGeometry,
    convert: Callable[[Degrees, Degrees, CoordSystem], tuple[np.ndarray, np.ndarray]],
    crs: CoordSystem,
) -> BaseGeometry:
    """Every vertex of `geometry` through `convert` (WGS-84's own geometry as it is)."""
    if crs == "wgs84":
        return geometry
    return cast(
        BaseGeometry,
        shapely.transform(geometry, lambda xy: np.column_stack(convert(xy[:, 0], xy[:, 1], crs))),
    )


def crs_member(crs: CoordSystem) -> dict[str, Any]:
    """The legacy GeoJSON `crs` member naming a Chinese map system (none for WGS-84, GeoJSON's own):
    a file written so says what it is, and `load_grids` reads it back."""
    return {} if crs == "wgs84" else {"crs": {"type": "name", "properties": {"name": crs}}}
