"""HEAD requests answered as GET without the body (RFC 9110 9.3.2: a server MUST support HEAD).

FastAPI routes a GET endpoint for GET only, so a load balancer's or monitor's `HEAD /healthz`, or a
client checking an evidence photo's size, got 405. The status and headers (Content-Length, ETag,
Content-Type) are the GET's own; the body is never sent.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: a HEAD request runs as the GET of the same URL, its body dropped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)
