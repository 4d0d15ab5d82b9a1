"""Unit grids as GeoJSON polygons with the cases open in each now: what the console's map colours."""

from __future__ import annotations

import sys
from typing import Annotated, Any

from fastapi import APIRouter, Query
from shapely.geometry import mapping

from serve.api.deps import DbSession, Reader, ServiceDep
from serve.api.schemas import MAP_CRS_HELP, GridFeatures
from serve.cases.coords import CoordSystem, crs_member, geometry_from_wgs84
from serve.cases.stats import worst_spots

router = APIRouter(tags=["grids"])


@router.get(
    "/v1/grids.geojson",
    summary="Unit grids as a GeoJSON FeatureCollection of polygons, with open cases per km² now",
    response_model=None,  # the dict is sent as built; `responses` gives clients its schema
    responses={200: {"model": GridFeatures}},
)
def grids_geojson(
    _: Reader,
    session: DbSession,
    service: ServiceDep,
    crs: Annotated[CoordSystem, Query(description=MAP_CRS_HELP)] = "wgs84",
) -> dict[str, Any]:
    grids = service.domain.rules.grids
    if grids is None:
        return {"type": "FeatureCollection", "features": [], **crs_member(crs)}
    open_now = {spot["grid_code"]: spot["open_cases"] for spot in worst_spots(session, grids, sys.maxsize)}
    features = [
        {
            "type": "Feature",
            "id": grid.code,
            "geometry": mapping(geometry_from_wgs84(grid.geometry, crs)),
            "properties": {
                "code": grid.code,
                "name": grid.name,
                "street": grid.street,
                "community": grid.community,
                "area_km2": grid.area_km2,
                "open_cases": open_now.get(grid.code, 0),
                "open_per_km2": open_now.get(grid.code, 0) / grid.area_km2 if grid.area_km2 else None,
            },
        }
        for grid in grids
    ]
    return {"type": "FeatureCollection", "features": features, **crs_member(crs)}
