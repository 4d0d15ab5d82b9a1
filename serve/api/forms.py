"""URL-encoded form bodies read as UTF-8, as the WHATWG URL standard reads them.

A GeoReport client that writes a citizen's Chinese words into an `application/x-www-form-urlencoded`
body as they are (UTF-8 bytes, not percent-encoded: `curl -d`, many app HTTP libraries) had them
stored as mojibake: Starlette decodes such bytes as Latin-1. The standard's parser decodes the
bytes of a urlencoded body as UTF-8 whether or not they were percent-encoded, so this middleware
percent-encodes the raw ones of a valid UTF-8 body before Starlette parses it. A body declaring
another charset, or not UTF-8 at all, goes on as it came.
"""

from __future__ import annotations

import re
from urllib.parse import quote_from_bytes

from starlette.types import Receive, Scope, Send

from serve.api.limits import BodyReader, content_type, replaying

RAW = re.compile(rb"[\x80-\xff]+")


def is_urlencoded_utf8(scope: Scope) -> bool:
    """A urlencoded form with no charset parameter, or charset=utf-8."""
    media, params = content_type(scope)
    charset = params.partition(b"charset=")[2].strip(b' "')
    return media == b"application/x-www-form-urlencoded" and charset in (b"", b"utf-8")


def percent_encoded(body: bytes) -> bytes:
    """`body` with its raw non-ASCII bytes percent-encoded, when they are UTF-8; else `body`."""
    if not RAW.search(body):
        return body
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    return RAW.sub(lambda raw: quote_from_bytes(raw[0]).encode("ascii"), body)


class Utf8Forms(BodyReader):
    """ASGI middleware: raw UTF-8 in a urlencoded form body reaches the routes as the text it is."""

    def wants(self, scope: Scope) -> bool:
        return is_urlencoded_utf8(scope)

    async def handle(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        encoded = percent_encoded(body)
        if encoded is not body:
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(encoded)).encode())]}
        await self.app(scope, replaying(encoded, receive), send)
