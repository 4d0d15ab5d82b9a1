"""FastAPI dependencies as `Annotated` aliases: the service, a DB session, the model, the caller.

Each route states the scope it needs through one of the principal aliases below (FastAPI
`Security` scopes), so the required scope of every route can be read back from the app itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import Depends, File, Header, Path, Request, Security, UploadFile
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
    SecurityScopes,
)
from pydantic import BeforeValidator
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from serve.api.schemas import MAX_ID
from serve.api.state import Service
from serve.cases.auth import Principal
from serve.cases.errors import (
    Busy,
    CsrfFailed,
    Forbidden,
    InvalidInput,
    TooLarge,
    TooManyAttempts,
    Unauthorized,
    UnsupportedMedia,
    as_sent,
)
from serve.cases.people import csrf_token, principal_of_user, session_user
from vision.core.detector import Detector
from vision.core.imageio import FORMATS, MEDIA_TYPES, formats_in_words, image_format
from vision.live.cameras import CAMERA_ID_MAX


def digits_only(value: object) -> object:
    """A row id in a path as the API writes it, ASCII digits. Python's int() (so pydantic's lax
    mode) also read `+1`, ` 1`, `1.0` and `1_0` (case 10): one case answered at many paths, which a
    proxy's rule or a cache keyed by the path tells apart."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError(f"{value!r} is not an id: ASCII digits only, e.g. 42")
    return value


DIGITS = BeforeValidator(digits_only)  # after Path(...): before it, OpenAPI showed `ge`, not `minimum`
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="case id (not the case number)"), DIGITS]
EvidenceId = Annotated[int, Path(ge=1, le=MAX_ID, description="evidence id"), DIGITS]
IfMatch = Annotated[
    str | None, Header(alias="If-Match", description="the ETag of GET /v1/cases/{id}; 428 without it")
]
CameraId = Annotated[str, Path(max_length=CAMERA_ID_MAX, description="camera id, as in cameras.yaml")]

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key in X-API-Key")
SESSION_COOKIE = "streetorder_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="a person's console session (POST /v1/sessions); changes also need the X-CSRF-Token header",
)


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def request_time(service: ServiceDep) -> datetime:
    """When the request arrived, by the service's clock: routers pass it to rules as `now`."""
    return service.clock()


Now = Annotated[datetime, Depends(request_time)]


def public_base(request: Request, service: ServiceDep) -> str:
    """The base of every absolute link the service hands out, ending in `/`: the configured
    `public_url`, never the Host header when one is set (a forged Host would otherwise poison the
    links in Open311 answers, a cache in front of them, and exported ledgers)."""
    configured = service.settings.public_url
    return configured.rstrip("/") + "/" if configured else str(request.base_url)


PublicBase = Annotated[str, Depends(public_base)]


def get_session(service: ServiceDep) -> Iterator[Session]:
    """One session per request; writing routes commit explicitly, anything else is rolled back."""
    with service.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]


def get_detector(service: ServiceDep) -> Detector:
    if service.detector is None:
        raise Busy(f"no model is loaded: {service.model_error}")
    return service.detector


DetectorDep = Annotated[Detector, Depends(get_detector)]


def principal_of(service: Service, presented: str | None, scopes: list[str], client: str) -> Principal:
    """Check a presented key, its rate and the scopes a route needs (blocking: scrypt may run here).

    A client (address) with too many failed keys in the last minute gets 429 with Retry-After
    before its key is even looked at; a good key over its rate (`KeyRates`: its own, else its
    scopes') gets 429 too, whichever address it comes from, and is counted in /metrics.
    """
    if not presented:
        raise Unauthorized("no API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    if wait := service.client_failures.wait_s(client):
        raise TooManyAttempts(f"too many failed keys or sign-ins from {client}; try again in {wait} s", wait)
    try:
        with service.sessions() as session:
            principal = service.verifier.verify(session, presented.strip())
    except Unauthorized:
        service.client_failures.failed(client)
        raise
    if wait := service.key_rates.wait_s(principal):
        service.metrics.key_limited.labels(principal.key_id).inc()
        per_min = service.key_rates.per_min(principal)
        raise TooManyAttempts(
            f"API key {principal.key_id} is over its {per_min} requests a minute; try again in {wait} s",
            wait,
        )
    for scope in scopes:
        if not principal.allows(scope):
            raise Forbidden(scope)
    return principal


def person_of(service: Service, token: str, method: str, csrf: str | None, scopes: list[str]) -> Principal:
    """A signed-in person from their session cookie; a change needs the session's CSRF token too."""
    with service.sessions() as session:
        principal = principal_of_user(session_user(session, token, service.clock()))
    if method not in SAFE_METHODS and not (
        csrf and hmac.compare_digest(csrf, csrf_token(token, service.verifier.pepper))
    ):
        raise CsrfFailed()
    for scope in scopes:
        if not principal.allows(scope):
            raise Forbidden(scope, holder=f"the role '{principal.role}'")
    return principal


def client_of(request: Request) -> str:
    """The address a request came from (a proxy in front: its address; configure it to forward)."""
    return request.client.host if request.client else "unknown"


def authenticate(
    security_scopes: SecurityScopes,
    request: Request,
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Depends(header_key)],
    cookie: Annotated[str | None, Depends(session_cookie)],
) -> Principal:
    """An API key (header) if one is sent, else the person of the session cookie."""
    presented = api_key or (credentials.credentials if credentials else None)
    if presented is None and cookie:
        csrf = request.headers.get(CSRF_HEADER)
        principal = person_of(service, cookie, request.method, csrf, security_scopes.scopes)
    else:
        principal = principal_of(service, presented, security_scopes.scopes, client_of(request))
    request.state.principal = principal  # for the audit log
    return principal


async def authenticate_open311(
    security_scopes: SecurityScopes,
    request: Request,
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Depends(header_key)],
) -> Principal:
    """GeoReport v2 clients send `api_key` as a form field of their POST; headers work too. Never
    from a URL's query (it would be written to access logs); GeoReport's reads need no key."""
    presented = api_key or (credentials.credentials if credentials else None)
    if presented is None and request.method == "POST":
        form_key = (await request.form()).get("api_key")  # FastAPI parsed the form already: cached
        presented = form_key if isinstance(form_key, str) else None
    if presented is None:  # a GeoReport client knows the form field, not this service's headers
        in_url = (
            " (a key in the URL is not read: access logs keep URLs)"
            if "api_key" in request.query_params
            else ""
        )
        raise Unauthorized(
            "no API key: send the form field `api_key`, `Authorization: Bearer <key>` or "
            f"`X-API-Key: <key>`{in_url}"
        )
    principal = await anyio.to_thread.run_sync(
        principal_of, service, presented, security_scopes.scopes, client_of(request)
    )
    request.state.principal = principal
    return principal


Detecting = Annotated[Principal, Security(authenticate, scopes=["detect"])]
Reporting = Annotated[Principal, Security(authenticate, scopes=["report"])]
Reader = Annotated[Principal, Security(authenticate, scopes=["cases:read"])]
Writer = Annotated[Principal, Security(authenticate, scopes=["cases:write"])]
Admin = Annotated[Principal, Security(authenticate, scopes=["admin"])]
Anyone = Annotated[Principal, Security(authenticate, scopes=[])]  # any valid key or session
Open311Reporter = Annotated[Principal, Security(authenticate_open311, scopes=["report"])]


IMAGE_TYPES = (*dict.fromkeys(MEDIA_TYPES.values()), "image/heif")  # the photo formats imageio takes
UNTYPED = (None, "", "application/octet-stream")  # a part whose sender named no type: its bytes decide


@dataclass(frozen=True)
class UploadedImage:
    data: bytes
    filename: str
    sha256: str


def one_of_each(form: FormData) -> None:
    """Refuse a form that sends one name twice: a form's field is its last part of that name. Two
    `file` parts lost the photos before the last while the answer said all went well; `lat=34.7&lat=1`
    or `role=near&role=after` said two things, of which the service heard the last while a proxy or
    log that reads the first saw the other (as a JSON object's repeated name: serve/api/strictjson.py)."""
    counts = Counter(name for name, _ in form.multi_items())
    if (parts := counts["file"]) > 1:
        raise InvalidInput("file", f"one photo a request: {parts} parts named 'file' were sent")
    if twice := next((name for name, n in counts.items() if n > 1), None):
        raise InvalidInput(twice, f"sent {counts[twice]} times in one form: send it once")


async def form_of_one_each(request: Request) -> None:
    """A urlencoded or multipart form body with no name sent twice (`one_of_each`)."""
    one_of_each(await request.form())  # the form FastAPI parsed: cached


FormOfOneEach = Annotated[None, Depends(form_of_one_each)]


def takes_several(parameter: dict[str, Any]) -> bool:
    """Whether an OpenAPI query parameter is a list (`state`, `event`: repeat it for several)."""
    schema = parameter.get("schema", {})
    return "array" in {schema.get("type"), *(branch.get("type") for branch in schema.get("anyOf", []))}


async def query_of_one_each(request: Request) -> None:
    """Refuse a query that gives a one-valued parameter twice: FastAPI read the last of
    `since=2026-01-01&since=2026-11-01` while a proxy's log or a cache read the first. The
    parameters taking several (`state`, `event`) are the OpenAPI document's arrays."""
    counts = Counter(name for name, _ in request.query_params.multi_items())
    twice = {name for name, n in counts.items() if n > 1}
    route = request.scope.get("route")
    if not twice or route is None:
        return
    operation = request.app.openapi()["paths"].get(route.path, {}).get(request.method.lower(), {})
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and parameter["name"] in twice and not takes_several(parameter):
            name = parameter["name"]
            raise InvalidInput(name, f"given {counts[name]} times in the query: give it once")


def refuse_other_formats(
    name: str,
    sent_as: str | None,
    data: bytes,
    *,
    untyped: bool,
    formats: frozenset[str] = FORMATS,
) -> None:
    """The bytes decide what a photo is, not the type it was sent as: an image of a format not taken
    (a GIF sent as image/jpeg was a 400 "unreadable", the same bytes untyped a 415), or untyped bytes
    that are no photo, are 415 naming what they are; garbled photo bytes go on to be refused (400).
    `formats` (imageio's names) are what the endpoint takes."""
    found, takes = image_format(data) if data else None, formats_in_words(formats)
    if data and found not in formats and (untyped or found is not None):
        what = f"a {found} image" if found else f"no {takes}"
        raise UnsupportedMedia(f"{as_sent(name)}: sent as {sent_as!r} and its bytes are {what}; send {takes}")


async def read_image(
    service: ServiceDep,
    request: Request,
    file: Annotated[
        UploadFile,
        # OpenAPI 3.1's `contentMediaType` alone made generated clients send the photo as a text field
        File(
            description="the photo: JPEG, PNG, WebP or HEIC, EXIF kept",
            json_schema_extra={"format": "binary"},
        ),
    ],
) -> UploadedImage:
    """The uploaded photo's bytes, refused early when of the wrong type or too large. A part sent
    without a type of its own (curl -F, a browser that knows no type for .heic) is taken when its
    bytes are a photo of a type taken; an empty one goes on to be refused as empty."""
    one_of_each(await request.form())  # the form FastAPI parsed: cached
    name = file.filename or "upload"
    generic = file.content_type in UNTYPED
    if file.content_type not in IMAGE_TYPES and not generic:
        raise UnsupportedMedia(
            f"{as_sent(name)}: content type {file.content_type!r}; send {' or '.join(IMAGE_TYPES)}"
        )
    limit = int(service.settings.max_upload_mb * 2**20)
    if file.size is not None and file.size > limit:
        raise TooLarge(f"{as_sent(name)}: {file.size} bytes is over the limit of {limit}")
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{as_sent(name)}: over the limit of {limit} bytes")
    refuse_other_formats(name, file.content_type, data, untyped=generic)
    return UploadedImage(data=data, filename=name, sha256=hashlib.sha256(data).hexdigest())


ImageUpload = Annotated[UploadedImage, Depends(read_image)]
