"""Domain errors, and the one place where they become HTTP responses.

Rules and services raise these plain exceptions (no HTTP below the routers); `install` maps each
to a status code and an RFC 9457 problem document, or to GeoReport v2's error list under /open311.
FastAPI's own validation errors become problem documents too (`errors` lists each field), and any
other exception a 500 problem document without internals. Rendering cannot fail: the values a
client sent (NaN, Infinity, bytes, nested exceptions) are never echoed as JSON numbers.
"""

from __future__ import annotations

import json
import logging
import math
import re
import xml.etree.ElementTree as ET
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException

from serve.cases.db import TextNotStorable

log = logging.getLogger("streetorder.errors")


class DomainError(Exception):
    """Base of every error a client can cause; `status` is its HTTP meaning, `extra` goes to the body."""

    status = 400
    title = "bad request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    status, title = 404, "not found"

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key} does not exist")


class InvalidTransition(DomainError):
    status, title = 409, "invalid transition"

    def __init__(self, state: str, action: str, allowed: list[str], detail: str | None = None) -> None:
        super().__init__(
            detail or f"action '{action}' is not allowed in state '{state}'",
            state=state,
            action=action,
            allowed_actions=allowed,
        )


class MissingField(DomainError):
    status, title = 422, "missing field"

    def __init__(self, action: str, fields: list[str]) -> None:
        super().__init__(f"action '{action}' needs: {', '.join(fields)}", fields=fields)


class InvalidInput(DomainError):
    """A well-formed request naming something that does not fit (unknown event, foreign evidence ...)."""

    status, title = 422, "invalid input"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}", field=field)


class OutsideJurisdiction(DomainError):
    """A position no unit grid of the layout holds: no street, community or department answers for it."""

    status, title = 422, "outside the jurisdiction"

    def __init__(self, lat: float, lon: float, bounds: tuple[float, float, float, float]) -> None:
        lon_min, lat_min, lon_max, lat_max = bounds
        super().__init__(
            f"lat/lon: ({lat}, {lon}) lies outside every unit grid of this bureau (the grids cover "
            f"lat {lat_min:.5f}..{lat_max:.5f}, lon {lon_min:.5f}..{lon_max:.5f}); no case was made",
            field="lat/lon",
            lat=lat,
            lon=lon,
            grid_bounds=[lon_min, lat_min, lon_max, lat_max],
        )


class PhotoReused(DomainError):
    """A photo already evidence of another case, sent as evidence of this one."""

    status, title = 409, "photo already evidence of another case"

    def __init__(self, case_number: str, evidence_id: int, case_id: int) -> None:
        super().__init__(
            f"this photo (the same bytes or a near-identical image) is already evidence {evidence_id} "
            f"of case {case_number}: take a new photo, or add it to that case",
            case=case_number,
            case_id=case_id,
            evidence_id=evidence_id,
        )


class AfterPhotoFailed(DomainError):
    """`handle` or `check_pass` on an after-photo whose check failed, without a person's override."""

    status, title = 409, "after-photo check failed"

    def __init__(self, action: str, evidence_id: int | None, failed: list[str]) -> None:
        what = f"after-photo {evidence_id}" if evidence_id is not None else "the case's after-photo"
        super().__init__(
            f"{what} failed its check ({', '.join(failed)}): '{action}' needs a new after-photo, "
            "or a person's reason in override_reason",
            action=action,
            evidence_id=evidence_id,
            failed=failed,
        )


class LastEvidence(DomainError):
    """A detach or split that would leave a case without any photo of its problem."""

    status, title = 409, "a case keeps its evidence"

    def __init__(self, case_number: str, evidence_ids: list[int]) -> None:
        super().__init__(
            f"case {case_number} would have no evidence left without {', '.join(map(str, evidence_ids))}: "
            "keep at least one photo (cancel or reject the case instead)",
            case=case_number,
            evidence_ids=evidence_ids,
        )


class CaseNotOpen(DomainError):
    """Evidence of a finished case (closed, cancelled, not filed) is its record: it is not regrouped."""

    status, title = 409, "case not open"

    def __init__(self, case_number: str, state: str) -> None:
        super().__init__(
            f"case {case_number} is {state}: its evidence is no longer changed", case=case_number
        )


class StaleVersion(DomainError):
    status, title = 412, "precondition failed"

    def __init__(self, expected: str, current: int | None) -> None:
        super().__init__(
            f"If-Match {expected} does not match the case's current version {current}; reload and retry",
            current_etag=None if current is None else f'"{current}"',
        )


class PreconditionRequired(DomainError):
    status, title = 428, "precondition required"

    def __init__(self) -> None:
        super().__init__("changes to a case need an If-Match header with the ETag from GET /v1/cases/{id}")


class Unauthorized(DomainError):
    status, title = 401, "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="streetorder"'}


class Forbidden(DomainError):
    status, title = 403, "forbidden"

    def __init__(self, scope: str, holder: str = "this API key") -> None:
        super().__init__(f"{holder} lacks the scope '{scope}'", required_scope=scope)


class NotPermitted(DomainError):
    """A person's role (or department) does not allow this, whatever the scopes say."""

    status, title = 403, "forbidden"

    def __init__(self, role: str, detail: str) -> None:
        super().__init__(f"role '{role}' {detail}", role=role)


class CsrfFailed(DomainError):
    status, title = 403, "forbidden"

    def __init__(self) -> None:
        super().__init__("a change made with a session cookie needs the session's X-CSRF-Token header")


class Conflict(DomainError):
    status, title = 409, "conflict"


class TooManyAttempts(DomainError):
    status, title = 429, "too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}


class UnsupportedMedia(DomainError):
    status, title = 415, "unsupported media type"


class TooLarge(DomainError):
    status, title = 413, "payload too large"


class IdempotencyMismatch(DomainError):
    status, title = 422, "idempotency key reused"

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key '{key}' was already used for a different request")


class Unavailable(DomainError):
    """A part the request needs is not installed (e.g. the privacy filter): withheld, not degraded."""

    status, title = 503, "unavailable"


class Busy(DomainError):
    status, title = 503, "busy"
    headers = {"Retry-After": "1"}


def _status_and_body(error: Exception) -> tuple[int, str, str, dict[str, Any], dict[str, str] | None]:
    if isinstance(error, DomainError):
        return error.status, error.title, error.detail, error.extra, error.headers
    if isinstance(error, StaleDataError):  # a concurrent writer bumped the version between read and write
        return 412, "precondition failed", "the case was changed by someone else; reload and retry", {}, None
    if isinstance(error, TextNotStorable):  # refused before the statement ran: nothing was written
        return 422, "invalid input", str(error), {}, None
    from vision.core.imageio import ImageError  # the loader's own error: a corrupt, truncated or huge image

    if isinstance(error, ImageError):
        return 400, "unreadable image", str(error), {}, None
    raise error


XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """`text` as XML 1.0 can hold it: each character it forbids (a citizen's description may hold
    any control character) becomes U+FFFD, so no one value makes a whole document unreadable."""
    return XML_FORBIDDEN.sub("\ufffd", text)


def georeport_errors(
    request: Request, status: int, description: str, headers: dict[str, str] | None = None
) -> Response:
    """GeoReport v2's error list of {code, description} (400 = bad input), in the format the path
    asks for: `<errors><error>...` for .xml, a JSON list otherwise."""
    status = 400 if status == 422 else status
    if request.url.path.endswith(".xml"):
        root = ET.Element("errors")
        error = ET.SubElement(root, "error")
        ET.SubElement(error, "code").text = str(status)
        ET.SubElement(error, "description").text = xml_text(description)
        document = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        return Response(document, status, headers, media_type="text/xml; charset=utf-8")
    return JSONResponse([{"code": status, "description": description}], status_code=status, headers=headers)


def json_safe(value: Any) -> Any:
    """`value` with every float finite and everything else JSON can hold (the rest as text)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def _response(body: Any, status: int, headers: dict[str, str] | None, media_type: str) -> JSONResponse:
    try:
        content = json.loads(json.dumps(json_safe(body), allow_nan=False))
    except (TypeError, ValueError, RecursionError):  # never: json_safe leaves only JSON; still, answer
        content = {"type": "about:blank", "title": "error", "status": status}
    return JSONResponse(content, status_code=status, headers=headers, media_type=media_type)


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An RFC 9457 problem document, or GeoReport v2's error list under /open311 (400 = bad input)."""
    if request.url.path.startswith("/open311/"):
        return georeport_errors(request, status, detail, headers)
    body = {**(extra or {}), "type": "about:blank", "title": title, "status": status, "detail": detail}
    return _response(body, status, headers, "application/problem+json")


def problem(request: Request, error: Exception) -> Response:
    status, title, detail, extra, headers = _status_and_body(error)
    return problem_response(request, status, title, detail, extra, headers)


def invalid_request(request: Request, error: Exception) -> Response:
    """FastAPI's validation errors as a 422 problem document naming each bad field (no echoed input)."""
    found = error.errors() if isinstance(error, RequestValidationError) else []
    fields = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in found
    ]
    described = "; ".join(
        f"{'.'.join(f['loc'][1:]) or f['loc'][0] if f['loc'] else 'request'}: {f['msg']}" for f in fields
    )
    return problem_response(
        request, 422, "invalid request", described or "invalid request", {"errors": fields}
    )


def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own errors (unknown path 404, wrong method 405, unparsable body 400) as problems."""
    status = error.status_code if isinstance(error, HTTPException) else 500
    detail = str(error.detail) if isinstance(error, HTTPException) else "error"
    headers = dict(error.headers or {}) if isinstance(error, HTTPException) else None
    return problem_response(request, status, detail.lower(), detail, headers=headers)


def unexpected(request: Request, error: Exception) -> Response:
    """Any other exception: logged with its traceback, answered as a 500 problem without internals."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return problem_response(
        request, 500, "internal error", "the service failed on this request; it is logged"
    )


def install(app: FastAPI) -> None:
    """Register the mapping on the app: the only place a domain error turns into a status code."""
    from vision.core.imageio import ImageError

    for error_type in (DomainError, StaleDataError, TextNotStorable, ImageError):
        app.add_exception_handler(error_type, problem)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
