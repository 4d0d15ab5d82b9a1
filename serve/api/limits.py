"""Request bodies over the upload limit are refused with 413 before they are read whole.

A declared Content-Length over the limit is refused at once (serve/api/app.py). A body streamed
without one (chunked transfer) is counted here as it arrives: past the limit the request ends
with 413, and whatever the endpoint would have answered about the cut body is dropped. Without
this, the multipart parser would spool any amount of data to disk before a route saw it.
"""

from __future__ import annotations

import contextlib

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.api.problems import problem
from serve.cases.errors import DomainError, TooLarge, TooManyAttempts


class BodyTooLarge(Exception):
    """Raised into the app's body reader when the streamed body passes the limit."""


class BodyLimit:
    """ASGI middleware: at most `limit` bytes of request body, counted while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def unless_over(message: Message) -> None:
            nonlocal started
            if over:  # the endpoint's answer about a cut body (400, 422, ...) is replaced below
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyTooLarge):  # or the app turned it into a response, dropped above
            await self.app(scope, counted, unless_over)
        if over and not started:
            error = TooLarge(
                f"request body over the limit of {self.limit} bytes (streamed without Content-Length)"
            )
            await problem(Request(scope), error)(scope, receive, send)


async def read_body(receive: Receive) -> bytes | None:
    """A request's whole body (bounded by BodyLimit outside), or None when the client went away."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def client_gone(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a client that went away before its body arrived with a 400 nobody reads: no answer
    at all was a RuntimeError ("No response returned.") with two tracebacks in the error log, which
    anyone could fill by cutting POSTs short."""
    gone = DomainError("the connection closed before the whole body arrived")
    await problem(Request(scope), gone)(scope, receive, send)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app a body already read, then whatever comes next (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def content_type(scope: Scope) -> tuple[bytes, bytes]:
    """A request's media type and its parameters, lower case (b"", b"" without the header)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media, _, params = value.lower().partition(b";")
            return media.strip(), params
    return b"", b""


class BodyReader:
    """ASGI middleware base: reads the whole body of the requests `wants` picks (bounded by BodyLimit
    outside) and gives it to `handle`; every other request, and the scope types that are not HTTP,
    pass through untouched. A client gone before its body arrived: `client_gone`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def wants(self, scope: Scope) -> bool:
        raise NotImplementedError

    async def handle(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.wants(scope):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            await client_gone(scope, receive, send)
            return
        await self.handle(scope, body, receive, send)


class ThrottledClients:
    """ASGI middleware: an address past its limit of failed API keys and sign-ins
    (`Service.client_failures`) gets 429 with Retry-After at the door, before routing,
    authentication or the database: a flood of garbage keys or guessed passwords costs the service
    next to nothing while it lasts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = getattr(scope["app"].state, "service", None) if scope["type"] == "http" else None
        client = str((scope.get("client") or ("unknown",))[0])
        if service is not None and (wait := service.client_failures.wait_s(client)):
            error = TooManyAttempts(
                f"too many failed keys or sign-ins from {client}; try again in {wait} s", wait
            )
            await problem(Request(scope), error)(scope, receive, send)
            return
        await self.app(scope, receive, send)
