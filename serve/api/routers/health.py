"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from serve.api.deps import Reader, ServiceDep
from serve.api.schemas import Health

log = logging.getLogger("streetorder.service")
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process answers (no key needed)")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Model loaded and database reachable (no key needed)",
    responses={503: {"model": Health, "description": "not ready: the status says what is missing"}},
)
def readyz(service: ServiceDep, response: Response) -> Health:
    """Public, so it says what is missing and never why: the model's error names the server's
    folders and models, a driver's error its database host and user; both are in the log (and the
    model's in the 503 of /v1/detect, for keys that may detect)."""
    problems = []
    if service.detector is None:
        problems.append("model not loaded (the service log says why)")
    try:
        with service.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as err:  # any driver error means not ready
        log.warning("readyz: database unreachable: %s: %s", type(err).__name__, err)
        problems.append("database unreachable (the service log says why)")
    if problems:
        response.status_code = 503
    calendar = service.domain.rules.calendar
    covered = service.domain.calendar_coverage(service.clock().astimezone(calendar.timezone).date())
    return Health(
        status="; ".join(problems) or "ok",
        model_version=service.detector.version if service.detector else None,
        database=service.sessions.kw["bind"].dialect.name,
        calendar=covered.warning()
        or f"holidays listed up to {covered.last_year}, deadlines reach {covered.reach_until}",
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (scope cases:read)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(
    _: Reader,
    service: ServiceDep,
) -> Response:
    service.metrics.in_flight.set(service.gate.in_flight)
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
