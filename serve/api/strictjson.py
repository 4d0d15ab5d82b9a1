"""JSON request bodies as RFC 8259 defines them: NaN and Infinity are no numbers, and the names
of an object are unique.

Python's json module (and so FastAPI) reads `NaN`, `Infinity` and `-Infinity` as floats. Passed on,
they slip through any field typed loosely (a Label Studio task, an `Any`), compare false with
every bound, and make the validation error itself unrenderable. It also keeps the last of two
members of one name: `{"action": "reject", "action": "confirm"}` confirmed a case, while a proxy or
log that reads the first saw a rejection. This middleware reads a JSON body once (BodyLimit,
outside it, bounds its size), answers 422 naming the constant or the repeated name when it holds
one, and otherwise hands the same bytes on.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from serve.api.limits import BodyReader, content_type, replaying
from serve.api.problems import problem_response


class Refused(ValueError):
    """A JSON body used NaN, Infinity or -Infinity, or one name twice in an object; says which."""


def refuse_constant(name: str) -> float:
    raise Refused(f"{name} is not a JSON number (RFC 8259): send a finite number or null")


def unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise Refused(f"the name {json.dumps(twice[:64], ensure_ascii=False)} appears twice in one object")
    return dict(pairs)


def bounded_int(digits: str) -> int:
    """An integer as Python reads one, refused by name past its limit of digits (a ValueError that
    FastAPI answered as a 400 "error parsing the body" naming no cause)."""
    if len(digits.lstrip("-")) > sys.get_int_max_str_digits():
        raise Refused(f"a number of {len(digits.lstrip('-'))} digits: no field here takes one that long")
    return int(digits)


def refusal(body: bytes) -> str | None:
    """Why a JSON body is refused, or None (also when it is not JSON: FastAPI's 422 says where).
    A body nested too deep to read or not UTF-8 was FastAPI's 400 "error parsing the body", which
    named no cause."""
    try:
        json.loads(
            body, parse_constant=refuse_constant, object_pairs_hook=unique_names, parse_int=bounded_int
        )
    except Refused as found:
        return str(found)
    except RecursionError:
        return "nested too deeply to read: no field here takes more than a few levels"
    except UnicodeDecodeError as undecodable:
        return f"not UTF-8 (byte {undecodable.start}: {undecodable.reason}); RFC 8259 JSON is UTF-8"
    except ValueError:  # not JSON: FastAPI's own 422 says where
        return None
    return None


def is_json(scope: Scope) -> bool:
    media, _ = content_type(scope)
    return media == b"application/json" or media.endswith(b"+json")


class StrictJson(BodyReader):
    """ASGI middleware: a JSON body with NaN, Infinity or a repeated name is a 422 problem before any
    route reads it."""

    def wants(self, scope: Scope) -> bool:
        return is_json(scope)

    async def handle(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        reason = refusal(body)
        if reason is not None:
            refused = problem_response(Request(scope), 422, "invalid request", f"body: {reason}")
            await refused(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)
