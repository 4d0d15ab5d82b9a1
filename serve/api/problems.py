"""The one place where errors become HTTP responses.

`install` maps each domain error (serve/cases/errors.py) to its status code and an RFC 9457 problem
document, or to GeoReport v2's error list under /open311. FastAPI's own validation errors become
problem documents too (`errors` lists each field), and any other exception a 500 problem document
without internals. Rendering cannot fail: the values a client sent (NaN, Infinity, bytes, nested
exceptions) are never echoed as JSON numbers.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import re
import secrets
import xml.etree.ElementTree as ET
from typing import Any

import h11
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from serve.cases.db import WRITES_LATER, TextNotStorable, is_busy, is_read_only, is_storage_full, unwritable
from serve.cases.errors import Busy, DatabaseReadOnly, DomainError, as_sent
from vision.core.imageio import ImageError, PhotoTooSmall

log = logging.getLogger("streetorder.errors")


def _status_and_body(error: Exception) -> tuple[int, str, str, dict[str, Any], dict[str, str] | None]:
    if isinstance(error, DomainError):
        return error.status, error.title, error.detail, error.extra, error.headers
    if isinstance(error, StaleDataError):  # a concurrent writer bumped the version between read and write
        return 412, "precondition failed", "the case was changed by someone else; reload and retry", {}, None
    if isinstance(error, TextNotStorable):  # refused before the statement ran: nothing was written
        return 422, "invalid input", str(error), {}, None
    if isinstance(error, PhotoTooSmall):  # an image, but nothing on it to judge: its size refused
        width, height = error.size
        extra = {"width": width, "height": height, "min_side": error.min_side}
        return 422, "photo too small", f"{as_sent(error.source)}: {error.reason}", extra, None
    if isinstance(error, ImageError):  # the loader's own error: a corrupt, truncated or huge image
        return 400, "unreadable image", f"{as_sent(error.source)}: {error.reason}", {}, None
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
        not_json(e)
        if e.get("type") == "json_invalid"
        else f"{'.'.join(f['loc'][1:]) or f['loc'][0] if f['loc'] else 'request'}: {f['msg']}"
        for e, f in zip(found, fields, strict=True)
    )
    return problem_response(
        request, 422, "invalid request", described or "invalid request", {"errors": fields}
    )


def not_json(error: dict[str, Any]) -> str:
    """A body that is no JSON, by where the reader stopped and why (FastAPI's loc is the position:
    a truncated body read "42: JSON decode error")."""
    at = error.get("loc", ("body", "?"))[-1]
    why = str((error.get("ctx") or {}).get("error", "")) or str(error.get("msg", ""))
    return f"body: not valid JSON at character {at}: {why}"


def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own errors (unknown path 404, wrong method 405, unparsable body 400) as problems.
    A form's file that its temporary folder could not take (FastAPI's "error parsing the body",
    caused by the spooled file's write) is a 507 like any file the service cannot store: the body
    was fine, and nothing was stored."""
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.errno in STORAGE_ERRORS:
        return insufficient_storage(request, cause, f"its temporary folder: {cause.strerror}")
    status = error.status_code if isinstance(error, HTTPException) else 500
    detail = str(error.detail) if isinstance(error, HTTPException) else "error"
    headers = dict(error.headers or {}) if isinstance(error, HTTPException) else None
    return problem_response(request, status, detail.lower(), detail, headers=headers)


def unexpected(request: Request, error: Exception) -> Response:
    """Any other exception: logged with its traceback under a fresh incident id, answered as a 500
    problem without internals (no SQL, paths or values) that gives the id, so that a caller's
    report finds the log line."""
    incident = secrets.token_hex(6)
    log.error("incident %s: %s %s failed", incident, request.method, request.url.path, exc_info=error)
    return problem_response(
        request,
        500,
        "internal error",
        f"the service failed on this request; it is logged as incident {incident}",
        {"incident": incident},
    )


def database_busy(request: Request, error: Exception) -> Response:
    """A write that waited out another writer's lock (a scan's long transaction, a backup) is a 503
    with Retry-After: its transaction was rolled back, nothing changed. So is a write to a database
    that cannot be written (a read-only file, folder or mount): said as such, without the database's
    name or URL. Any other database error stays a 500, but for a full disk (507, as for files)."""
    if is_storage_full(error):
        return insufficient_storage(request, error, "its database's disk is full")
    if is_read_only(error):  # the operator's log names the file and what to do; the answer does not
        service = getattr(request.app.state, "service", None)
        why = unwritable(service.settings.db_url, WRITES_LATER) if service is not None else None
        log.error(
            "%s %s: %s", request.method, request.url.path, why or f"the database cannot be written: {error}"
        )
        read_only = DatabaseReadOnly(
            "the case database cannot be written now (it is read-only); nothing was changed: "
            "reads go on, and the same request is taken once an operator has made it writable"
        )
        return problem(request, read_only)
    if not is_busy(error):
        return unexpected(request, error)
    log.warning("%s %s: the database stayed busy: %s", request.method, request.url.path, error)
    busy = Busy("the database is busy with another writer; nothing was changed: send the request again")
    return problem(request, busy)


# a full disk, a quota, a file-size limit (`ulimit -f`) or a read-only mount where files are kept
STORAGE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def storage_full(request: Request, error: Exception) -> Response:
    """A file the service could not write (evidence, annotations) is a 507 said as such, not an
    anonymous 500: the request's transaction is rolled back and the atomic write's temporary file
    removed, so nothing was stored and the same request can be sent again once there is room.
    Any other OSError stays a 500."""
    if not isinstance(error, OSError) or error.errno not in STORAGE_ERRORS:
        return unexpected(request, error)
    return insufficient_storage(request, error, str(error.strerror))


def insufficient_storage(request: Request, error: Exception, why: str) -> Response:
    log.error("%s %s: cannot store: %s", request.method, request.url.path, error)
    return problem_response(
        request,
        507,
        "insufficient storage",
        f"the service cannot store anything now ({why}); nothing was changed: "
        "send the request again once an operator has made room",
    )


def install(app: FastAPI) -> None:
    """Register the mapping on the app: the only place a domain error turns into a status code."""
    for error_type in (DomainError, StaleDataError, TextNotStorable, ImageError):
        app.add_exception_handler(error_type, problem)
    # DBAPIError, not OperationalError alone: PostgreSQL's read-only refusal (25006) is an InternalError
    app.add_exception_handler(DBAPIError, database_busy)
    app.add_exception_handler(OSError, storage_full)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


class ProblemH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, answering a request it cannot frame (a bad chunk size, two
    Content-Lengths, a NUL in a header, a raw byte in the path) with a problem document like every
    other error, instead of its text/plain "Invalid HTTP request received."; still 400, and the
    connection still closes (what follows on it cannot be framed either)."""

    def send_400_response(self, msg: str) -> None:
        detail = "the request is not HTTP/1.1 as RFC 9112 frames it (its line, headers or body framing)"
        body = json.dumps(
            {"type": "about:blank", "title": "bad request", "status": 400, "detail": detail}
        ).encode()
        headers = [
            (b"content-type", b"application/problem+json"),
            (
                b"content-length",
                str(len(body)).encode(),
            ),  # not chunked: a client that framed nothing reads it
            (b"connection", b"close"),
        ]
        answer = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
        for event in (answer, h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
