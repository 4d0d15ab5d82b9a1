"""Coordinate systems at the API's edges: a position sent in GCJ-02 or BD-09 (AMap, WeChat, Baidu)
is kept as WGS-84; the map's GeoJSON is drawn in the tile server's system on request."""

from __future__ import annotations

import math
from typing import Any

import pytest
from conftest import Service
from open311_client import GeoReportError
from test_api_detect import PLACE, upload
from test_open311 import REQUEST, client

from serve.cases.coords import from_wgs84, position_to_wgs84, wgs84_to_gcj02
from serve.cases.grids import haversine_m

READ = "cases:read"


def sent_as(lat: float, lon: float, crs: str) -> tuple[float, float]:
    """The (lat, lon) a map in `crs` shows for a WGS-84 place."""
    x, y = from_wgs84(lon, lat, crs)  # type: ignore[arg-type]
    return float(y), float(x)


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_a_report_placed_on_a_chinese_map_keeps_wgs84(service: Service, jpeg: Any, crs: str) -> None:
    lat, lon = float(PLACE["lat"]), float(PLACE["lon"])
    shown_lat, shown_lon = sent_as(lat, lon, crs)
    assert haversine_m(shown_lat, shown_lon, lat, lon) > 300  # taken as WGS-84: another street
    response = service.client.post(
        "/v1/reports",
        files=upload(jpeg()),
        data={"lat": repr(shown_lat), "lon": repr(shown_lon), "coord_system": crs},
        headers=service.auth("report"),
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert haversine_m(report["lat"], report["lon"], lat, lon) < 0.01


def test_a_wechat_citizen_request_in_gcj02_files_its_case_at_the_wgs84_place(service: Service) -> None:
    lat, lon = REQUEST["lat"], REQUEST["long"]
    shown_lat, shown_lon = sent_as(lat, lon, "gcj02")  # type: ignore[arg-type]
    created = client(service).create(
        **{**REQUEST, "lat": shown_lat, "long": shown_lon, "coord_system": "gcj02"}
    )
    [case] = service.client.get("/v1/cases", headers=service.auth(READ)).json()["items"]
    assert case["number"] == created["service_request_id"]
    assert haversine_m(case["lat"], case["lon"], lat, lon) < 0.01  # type: ignore[arg-type]


def test_an_unknown_coordinate_system_is_refused(service: Service, jpeg: Any) -> None:
    response = service.client.post(
        "/v1/reports",
        files=upload(jpeg()),
        data={**PLACE, "coord_system": "baidu"},
        headers=service.auth("report"),
    )
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert "coord_system" in response.text
    with pytest.raises(GeoReportError) as refused:
        client(service, "json").create(**{**REQUEST, "coord_system": "bd09ll"})
    assert refused.value.status == 400 and "coord_system" in refused.value.description
    assert service.client.get("/v1/cases", headers=service.auth(READ)).json()["items"] == []


@pytest.mark.parametrize("lat", [math.nan, math.inf, 90.004])
def test_non_positions_are_refused_in_any_coordinate_system(service: Service, lat: float) -> None:
    """90.004° BD-09 would convert to a valid latitude: it is refused before, as in WGS-84."""
    with pytest.raises(GeoReportError) as refused:
        client(service, "json").create(**{**REQUEST, "lat": lat, "coord_system": "bd09"})
    assert refused.value.status == 400 and "lat" in refused.value.description


def test_the_map_geojson_is_drawn_in_the_tile_servers_system(service: Service) -> None:
    client(service).create(**REQUEST)
    reader = service.auth(READ)
    cases = service.client.get("/v1/cases.geojson", headers=reader).json()
    shifted = service.client.get("/v1/cases.geojson", params={"crs": "gcj02"}, headers=reader).json()
    assert "crs" not in cases and shifted["crs"] == {"type": "name", "properties": {"name": "gcj02"}}
    lon, lat = cases["features"][0]["geometry"]["coordinates"]
    expected = [float(v) for v in wgs84_to_gcj02(lon, lat)]
    assert shifted["features"][0]["geometry"]["coordinates"] == pytest.approx(expected, abs=1e-12)
    assert shifted["features"][0]["properties"]["lat"] == lat  # the case itself stays WGS-84

    grids = service.client.get("/v1/grids.geojson", headers=reader).json()
    on_baidu = service.client.get("/v1/grids.geojson", params={"crs": "bd09"}, headers=reader).json()
    corner = grids["features"][0]["geometry"]["coordinates"][0][0]
    moved = on_baidu["features"][0]["geometry"]["coordinates"][0][0]
    assert moved == pytest.approx([float(v) for v in from_wgs84(*corner, "bd09")], abs=1e-12)
    bad = service.client.get("/v1/grids.geojson", params={"crs": "EPSG:3857"}, headers=reader)
    assert bad.status_code == 422 and "crs" in bad.text


def test_a_held_request_placed_from_a_chinese_map_files_its_case_at_the_wgs84_place(service: Service) -> None:
    """The operator reads the place off AMap (GCJ-02): taken as WGS-84 the case lay ~500 m off."""
    held = client(service, "json").create(
        service_code="06010", address_string="淮河路 12 号门口", description="一堆建筑垃圾"
    )
    lat, lon = 34.72355, 113.63091
    shown_lat, shown_lon = sent_as(lat, lon, "gcj02")
    place, writer = f"/v1/citizen-requests/{held['token']}/place", service.auth("cases:write")
    for refused in ({"coord_system": "amap"}, {"coord_sytem": "gcj02"}):  # unknown; a typo, not ignored
        response = service.client.post(
            place, json={"lat": shown_lat, "lon": shown_lon, **refused}, headers=writer
        )
        assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
        assert next(iter(refused)) in response.text
    assert service.client.get("/v1/cases", headers=service.auth(READ)).json()["items"] == []
    placing = service.client.post(
        place, json={"lat": shown_lat, "lon": shown_lon, "coord_system": "gcj02"}, headers=writer
    )
    assert placing.status_code == 200, placing.text
    [case] = service.client.get("/v1/cases", headers=service.auth(READ)).json()["items"]
    assert case["number"] == placing.json()["service_request_id"]
    assert haversine_m(case["lat"], case["lon"], lat, lon) < 0.01


BEIJING = (39.9, 116.4)  # outside every grid of the Zhengzhou layout


@pytest.mark.parametrize("crs", ["wgs84", "gcj02", "bd09"])
def test_a_citizen_request_outside_every_grid_echoes_lat_long_as_sent(service: Service, crs: str) -> None:
    """GeoReport's fields are lat/long; the citizen app sent its own system's numbers, not WGS-84."""
    lat, long = BEIJING
    with pytest.raises(GeoReportError) as refused:
        client(service, "json").create(**{**REQUEST, "lat": lat, "long": long, "coord_system": crs})
    said = refused.value.description
    in_system = f" ({crs})" if crs != "wgs84" else ""
    assert refused.value.status == 400
    assert said.startswith(f"lat/long: (39.9, 116.4){in_system} lies outside every unit grid"), said
    assert "lat/lon:" not in said and ", long 113." in said


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_a_report_or_placement_outside_every_grid_echoes_the_position_as_sent(
    service: Service, jpeg: Any, crs: str
) -> None:
    lat, lon = BEIJING
    wgs84_lat, wgs84_lon = position_to_wgs84(lat, lon, crs)  # type: ignore[arg-type]
    held = client(service, "json").create(service_code="06010", address_string="淮河路 12 号门口")
    for response in (
        service.client.post(
            "/v1/reports",
            files=upload(jpeg()),
            data={"lat": repr(lat), "lon": repr(lon), "coord_system": crs},
            headers=service.auth("report"),
        ),
        service.client.post(
            f"/v1/citizen-requests/{held['token']}/place",
            json={"lat": lat, "lon": lon, "coord_system": crs},
            headers=service.auth("cases:write"),
        ),
    ):
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["title"] == "outside the jurisdiction" and problem["field"] == "lat/lon"
        assert (problem["lat"], problem["lon"], problem["coord_system"]) == (lat, lon, crs)
        assert problem["wgs84"] == {"lat": wgs84_lat, "lon": wgs84_lon}
        assert problem["detail"].startswith(f"lat/lon: (39.9, 116.4) ({crs}) lies outside"), problem["detail"]
    assert service.client.get("/v1/cases", headers=service.auth(READ)).json()["items"] == []
