"""JSON request bodies as RFC 8259 defines them: NaN and Infinity are no numbers.

Python's json module (and so FastAPI) reads `NaN`, `Infinity` and `-Infinity` as floats. Passed on,
they slip through any field typed loosely (a Label Studio task, an `Any`), compare false with
every bound, and make the validation error itself unrenderable. This middleware reads a JSON body
once (BodyLimit, outside it, bounds its size), answers 422 naming the constant when it holds one,
and otherwise hands the same bytes on.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from serve.api.limits import read_body, replaying
from serve.cases.errors import problem_response


class NotFinite(ValueError):
    """A JSON body used NaN, Infinity or -Infinity."""


def refuse_constant(name: str) -> float:
    raise NotFinite(name)


def non_finite_constant(body: bytes) -> str | None:
    """The first NaN/Infinity constant of a JSON body, or None (also when it is no JSON at all)."""
    try:
        json.loads(body, parse_constant=refuse_constant)
    except NotFinite as found:
        return str(found)
    except (ValueError, RecursionError):  # not JSON, or too deep: FastAPI's own 422/400 says so
        return None
    return None


def is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class StrictJson:
    """ASGI middleware: a JSON body with NaN or Infinity is a 422 problem before any route reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_json(scope):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # the client went away
            return
        constant = non_finite_constant(body)
        if constant is not None:
            detail = f"body: {constant} is not a JSON number (RFC 8259): send a finite number or null"
            await problem_response(Request(scope), 422, "invalid request", detail)(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)
