"""Unit grids as GeoJSON polygons with the cases open in each now: what the console's map colours."""

from __future__ import annotations

import sys
from typing import Any

from fastapi import APIRouter
from shapely.geometry import mapping

from serve.api.deps import DbSession, Reader, ServiceDep
from serve.cases.stats import worst_spots

router = APIRouter(tags=["grids"])


@router.get(
    "/v1/grids.geojson",
    summary="Unit grids as a GeoJSON FeatureCollection of polygons, with open cases per km² now",
    response_model=dict[str, Any],
)
def grids_geojson(
    _: Reader,
    session: DbSession,
    service: ServiceDep,
) -> dict[str, Any]:
    grids = service.domain.rules.grids
    if grids is None:
        return {"type": "FeatureCollection", "features": []}
    open_now = {spot["grid_code"]: spot["open_cases"] for spot in worst_spots(session, grids, sys.maxsize)}
    features = [
        {
            "type": "Feature",
            "id": grid.code,
            "geometry": mapping(grid.geometry),
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
    return {"type": "FeatureCollection", "features": features}
