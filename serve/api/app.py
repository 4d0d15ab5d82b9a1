"""The case service: `create_app(settings)` builds the FastAPI app; its lifespan opens the database
(migrating it), loads the model once, and holds both for every request.

A service without a loadable model still starts (case work does not need one): /readyz then says
why it is not ready, and /v1/detect and /v1/reports answer 503.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from datetime import datetime
from functools import partial

import anyio
from fastapi import Depends, FastAPI, Request, Response
from sqlalchemy.exc import DBAPIError

from serve.api import openapi, problems
from serve.api.deps import SAFE_METHODS, query_of_one_each
from serve.api.forms import Utf8Forms
from serve.api.head import HeadAsGet
from serve.api.idempotency import IdempotentPosts
from serve.api.limits import BodyLimit, ThrottledClients
from serve.api.notify import NotificationSender
from serve.api.pull import AnnotationPuller
from serve.api.redaction import Renders
from serve.api.reload import ModelReloader
from serve.api.routers import (
    apidocs,
    cameras,
    cases,
    console,
    detect,
    evidence,
    grids,
    health,
    keys,
    labelstudio,
    ledger,
    open311,
    people,
    regrouping,
    reports,
    stats,
    supervision,
)
from serve.api.schemas import MAX_ID, bureau_timezone
from serve.api.state import CasesByState, InferenceGate, KeyRates, Metrics, Service
from serve.api.strictjson import StrictJson
from serve.cases import errors
from serve.cases.auth import KeyVerifier, server_secret
from serve.cases.db import (
    WRITES_LATER,
    is_busy,
    is_read_only,
    is_storage_full,
    open_database,
    transaction,
    unwritable,
)
from serve.cases.domain import load_domain
from serve.cases.notify import load_notify_config
from serve.cases.orm import AuditEntry
from serve.cases.scan import load_flyer_finder
from serve.cases.settings import Settings, get_settings

log = logging.getLogger("streetorder.service")
FORM_OVERHEAD = 1 << 20  # multipart framing and form fields around an image


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """Build the service; raises SecretError at once when the secret is unsafe outside dev mode.

    `clock` gives routers the time a request arrives (default: the system clock in UTC); replaying
    a recorded day against the service, e.g. in tests, passes its own.
    """
    settings = settings or get_settings()
    pepper = server_secret(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        domain = load_domain(settings)
        sessions = await anyio.to_thread.run_sync(open_database, settings.db_url)
        # a read-only file in a writable folder opens and reads: said now, not at the first write's 503
        if why := unwritable(settings.db_url, then=WRITES_LATER):
            log.error("%s", why)
        service = Service(
            settings=settings,
            domain=domain,
            sessions=sessions,
            verifier=KeyVerifier(pepper),
            gate=InferenceGate(settings.inference_threads, settings.inference_queue),
            metrics=metrics,
            renders=Renders(settings.evidence_dir, settings.render_threads),
            key_rates=KeyRates(settings),
        )
        if clock is not None:
            service.clock = clock
        today = service.clock().astimezone(domain.rules.calendar.timezone).date()
        if warning := domain.calendar_coverage(today).warning():
            log.warning("working calendar: %s", warning)
        grids = list(domain.rules.grids or ())
        for problem in (
            domain.routing.unmatched([g.code for g in grids], {g.street for g in grids}) if grids else []
        ):
            log.warning(
                "%s: %s (grids: %s); fix the rule or the grids file, or the rule never routes a case",
                settings.configs_dir / "routing.yaml",
                problem,
                settings.grids,
            )
        service.notify = load_notify_config(
            settings.notifications_file(), clock=service.clock, departments=domain.routing.departments
        )
        service.flyers = load_flyer_finder(settings)
        metrics.registry.register(CasesByState(sessions))
        reloader = ModelReloader(service, settings.model_reload_s)  # before loading: no promotion is missed
        try:
            from vision.detect.backends import load_detector

            load = partial(
                load_detector,
                models_dir=settings.models_dir,
                taxonomy=domain.rules.taxonomy,
                confidence=service.detection_floor(),
            )
            service.detector = await anyio.to_thread.run_sync(load, settings.model)
            metrics.model.labels(service.detector.version).set(1)
        except Exception as err:  # any backend failure: serve cases anyway, /readyz reports it
            said = str(err)  # most errors name the file already: "evil.pt: evil.pt: refused" said it twice
            service.model_error = said if str(settings.model) in said else f"{settings.model}: {said}"
            log.error("model not loaded, detection endpoints answer 503: %s", service.model_error)
        app.state.service = service
        reloader.start()
        puller = AnnotationPuller(settings, service.clock).start()  # what a webhook missed comes in
        sender = NotificationSender(service).start()
        try:
            yield
        finally:
            sender.stop()
            puller.stop()
            reloader.stop()
            sessions.kw["bind"].dispose()

    app = FastAPI(
        title="streetorder",
        version="1",
        summary="Street-order violations (四乱) found in photos, handled as grid cases (网格案卷).",
        description=(
            "Every endpoint but /healthz, /readyz and signing in (POST /v1/sessions) needs an API key "
            "(`Authorization: Bearer <key>` or `X-API-Key`) with the scope the endpoint names, or a person's "
            "session cookie (whose role gives the scopes; changes also need `X-CSRF-Token`). "
            "Errors are RFC 9457 problem documents "
            "(GeoReport v2 error lists under /open311)."
        ),
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load Swagger UI and ReDoc from a CDN: ours is served whole
        redoc_url=None,  # (serve/api/routers/apidocs.py)
        generate_unique_id_function=openapi.operation_id,
        dependencies=[Depends(query_of_one_each)],
    )
    problems.install(app)
    openapi.document(app)
    logging.getLogger("uvicorn.access").addFilter(QUERY_SECRETS)
    app.add_middleware(StrictJson)  # inside BodyLimit: the JSON it reads is bounded
    app.add_middleware(Utf8Forms)  # inside BodyLimit too: it reads a urlencoded form's body
    app.add_middleware(IdempotentPosts)  # inside BodyLimit too: it buffers a keyed POST's body
    app.add_middleware(BodyLimit, limit=int(settings.max_upload_mb * 2**20) + FORM_OVERHEAD)  # chunked too

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Refuse oversized bodies before they are read; answer times on the bureau's clock
        (serve/api/schemas.py `Time`); count, time and audit every request."""
        length = request.headers.get("content-length")
        limit = int(settings.max_upload_mb * 2**20) + FORM_OVERHEAD
        if length and length.isdigit() and int(length) > limit:
            return problems.problem(
                request, errors.TooLarge(f"request body of {length} bytes is over {limit}")
            )
        coding = request.headers.get("content-encoding", "identity").strip().lower()
        if coding != "identity":  # read as is, a gzip body was a 400 'error parsing the body'
            refused = errors.UnsupportedMedia(f"Content-Encoding {coding[:32]!r}: send the body uncompressed")
            return problems.problem(request, refused)
        started = time.perf_counter()
        service = getattr(app.state, "service", None)
        with bureau_timezone(service.domain.rules.calendar.timezone) if service else nullcontext():
            response = await call_next(request)  # every time it answers: the bureau's offset
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, template, str(response.status_code)).inc()
        metrics.latency.labels(request.method, template).observe(time.perf_counter() - started)
        if request.method not in SAFE_METHODS and hasattr(app.state, "service"):
            await anyio.to_thread.run_sync(audit, app.state.service, request, response.status_code)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")  # a JPEG/HTML polyglot stays a JPEG
        if response.headers.get("content-type", "").startswith("image/"):
            response.headers.setdefault("Content-Security-Policy", "default-src 'none'; sandbox")
        elif response.headers.get("content-type", "").startswith("text/html"):  # console, /docs
            response.headers.setdefault("X-Frame-Options", "DENY")  # no page of ours inside another's
            response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response

    app.add_middleware(HeadAsGet)  # every GET answers HEAD too, throttled and counted as one
    app.add_middleware(ThrottledClients)  # outermost: a throttled address costs no routing at all

    for module in (
        health,
        detect,
        reports,
        cases,
        evidence,
        regrouping,
        stats,
        supervision,
        ledger,
        open311,
        keys,
        people,
        cameras,
        grids,
        labelstudio,
        console,
        apidocs,
    ):
        app.include_router(module.router)
    return app


class QuerySecretsRedacted(logging.Filter):
    """Access-log lines without the value of a key sent in the query (GeoReport's `api_key`)."""

    PATTERN = re.compile(r"((?:^|[?&])(?:api_key|access_token|password)=)[^&\s]*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


QUERY_SECRETS = QuerySecretsRedacted()  # one instance: adding it again (another app) changes nothing


def audit(service: Service, request: Request, status: int) -> None:
    """One audit row per changing request: who (key id), what (method, path), how it ended.

    Written after the request's own transaction: when the database stays busy past its wait, its
    disk is full or it cannot be written at all, the row goes to the error log instead, and the
    answer (a change committed, a 503 or a 507) stands.
    """
    try:
        write_audit(service, request, status)
    except DBAPIError as error:  # PostgreSQL's read-only refusal is an InternalError
        if is_busy(error):
            why = "the database stayed busy"
        elif is_storage_full(error):
            why = "the database's disk is full"
        elif is_read_only(error):
            why = "the database cannot be written"
        else:
            raise
        principal = getattr(request.state, "principal", None)
        log.error(
            "audit row not written, %s: %s %s -> %s by key %s",
            why,
            request.method,
            request.url.path,
            status,
            principal.key_id if principal else None,
        )


def write_audit(service: Service, request: Request, status: int) -> None:
    principal = getattr(request.state, "principal", None)
    case_id = request.scope.get("path_params", {}).get("case_id")
    with transaction(service.sessions) as session:
        session.add(
            AuditEntry(
                at=service.clock(),
                principal=principal.key_id if principal else None,
                method=request.method,
                path=request.url.path[:2000].replace("\x00", "%00"),  # a NUL no text column takes: a 500 once
                status=status,
                case_id=int(case_id) if str(case_id).isdigit() and int(case_id) <= MAX_ID else None,
            )
        )
