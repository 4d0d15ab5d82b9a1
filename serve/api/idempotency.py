"""`Idempotency-Key`: a retried request gets the first response back and changes nothing.

On every POST: routes that declare the header use `run_once` (the answer kept in the transaction
of the changes it reports); `IdempotentPosts` serves every other POST that creates something
(evidence, keys, accounts, extensions, supervision items ...), including routes added later.

Keys belong to the caller (API key id) and the endpoint. The first response is stored in the
same transaction as the changes it reports, so either both exist or neither does; a request that
loses a race with its own retry finds the winner's record and replays it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.api.limits import client_gone, read_body, replaying
from serve.api.problems import problem
from serve.cases.db import transaction
from serve.cases.errors import IdempotencyMismatch, InvalidInput
from serve.cases.fingerprints import request_hash
from serve.cases.orm import IdempotencyRecord

REPLAY_HEADER = "Idempotent-Replayed"


def stored(
    session: Session, principal: str, endpoint: str, key: str, fingerprint: str
) -> IdempotencyRecord | None:
    """The first response to this key, or None; the same key with another request is an error."""
    record = session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.principal == principal,
            IdempotencyRecord.endpoint == endpoint,
            IdempotencyRecord.key == key,
        )
    ).one_or_none()
    if record is not None and record.request_hash != fingerprint:
        raise IdempotencyMismatch(key)
    return record


def remember(
    session: Session,
    *,
    principal: str,
    endpoint: str,
    key: str,
    fingerprint: str,
    status_code: int,
    body: dict[str, Any],
    now: datetime,
) -> None:
    """Store the response in the caller's transaction (a racing twin fails on the unique key)."""
    session.add(
        IdempotencyRecord(
            principal=principal,
            endpoint=endpoint,
            key=key,
            request_hash=fingerprint,
            status_code=status_code,
            response=body,
            created_at=now,
        )
    )
    session.flush()


def run_once(
    sessions: sessionmaker[Session],
    work: Callable[[Session], dict[str, Any]],
    *,
    principal: str,
    endpoint: str,
    key: str | None,
    fingerprint: str,
    now: datetime,
    status_code: int = 200,
) -> tuple[dict[str, Any], bool]:
    """Run `work` in one transaction and return its JSON body, or replay the stored one.

    Returns (body, replayed). Without a key, `work` simply runs.
    """
    if key is not None:
        with sessions() as session:
            first = stored(session, principal, endpoint, key, fingerprint)
            if first is not None:
                return first.response, True
    try:
        with transaction(sessions) as session:
            body = work(session)
            if key is not None:
                remember(
                    session,
                    principal=principal,
                    endpoint=endpoint,
                    key=key,
                    fingerprint=fingerprint,
                    status_code=status_code,
                    body=body,
                    now=now,
                )
        return body, False
    except IntegrityError:
        if key is None:
            raise
        with sessions() as session:
            first = stored(session, principal, endpoint, key, fingerprint)
        if first is None:
            raise
        return first.response, True


SECRET_FIELDS = ("key", "password")  # shown once, never kept: a replay answers without them
MAX_KEY_LENGTH = 128


def declares_idempotency(route: BaseRoute) -> bool:
    """Whether a route reads Idempotency-Key itself (and stores its answer in its own transaction)."""
    return takes_header(route, "Idempotency-Key")


def takes_header(route: BaseRoute, name: str) -> bool:
    """Whether the route or one of its dependencies reads the header `name`."""
    dependant = getattr(route, "dependant", None)
    pending = [dependant] if dependant is not None else []
    while pending:
        current = pending.pop()
        if any(p.alias.lower() == name.lower() for p in current.header_params):
            return True
        pending.extend(current.dependencies)
    return False


def caller_of(scope: Scope) -> str:
    """Who sent the request, as far as a middleware can tell before authentication: a hash of the
    credential (API key, session cookie), else of the client address."""
    headers = dict(scope.get("headers", ()))
    credential = headers.get(b"authorization") or headers.get(b"x-api-key") or headers.get(b"cookie")
    if credential is None:
        credential = str((scope.get("client") or ("?", 0))[0]).encode()
    return hashlib.sha256(credential).hexdigest()[:16]


def canonical_body(scope: Scope, body: bytes) -> bytes:
    """The body without its multipart boundary: a client's retry draws a new one, the same form."""
    content_type = dict(scope.get("headers", ())).get(b"content-type", b"")
    _, found, boundary = content_type.partition(b"boundary=")
    boundary = boundary.split(b";")[0].strip(b'" ')
    return body.replace(boundary, b"") if found and boundary else body


class IdempotentPosts:
    """ASGI middleware: `Idempotency-Key` on every POST, so a retried request creates nothing twice.

    Routes that declare the header themselves (reports, Open311 requests) keep their answer in the
    same transaction as their changes; every other POST is served here: the first 2xx answer to a
    (caller, path, key) is kept and replayed to retries with `Idempotent-Replayed: true`, the same
    key with another body is a 422, and retries that overlap the first wait for it (one process).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._locks: dict[tuple[str, str, str], anyio.Lock] = {}
        self._declared: dict[int, bool] = {}

    def handled_by_route(self, scope: Scope) -> bool:
        for route in scope["app"].router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                if id(route) not in self._declared:
                    self._declared[id(route)] = declares_idempotency(route)
                return self._declared[id(route)]
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = dict(scope.get("headers", ())).get(b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST" or self.handled_by_route(scope):
            await self.app(scope, receive, send)
            return
        text = key.decode("latin-1").strip()
        if not 0 < len(text) <= MAX_KEY_LENGTH:
            error = InvalidInput("Idempotency-Key", f"give 1 to {MAX_KEY_LENGTH} characters")
            await problem(Request(scope), error)(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            await client_gone(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if len(path) <= 64 else hashlib.sha256(path.encode()).hexdigest()
        caller = caller_of(scope)
        query = scope.get("query_string", b"").decode("latin-1")
        fingerprint = request_hash(path, query, hashlib.sha256(canonical_body(scope, body)).hexdigest())
        sessions = scope["app"].state.service.sessions
        lock = self._locks.setdefault((caller, endpoint, text), anyio.Lock())
        async with lock:
            try:
                first = await anyio.to_thread.run_sync(
                    self._stored, sessions, caller, endpoint, text, fingerprint
                )
            except IdempotencyMismatch as err:
                await problem(Request(scope), err)(scope, receive, send)
                return
            if first is not None:
                await self._replay(first, send)
                return
            answer = await self._forward(scope, bytes(body), receive, send)
            if answer is not None:
                status, media_type, content = answer
                await anyio.to_thread.run_sync(
                    self._remember, sessions, caller, endpoint, text, fingerprint, status, media_type, content
                )
        self._locks.pop((caller, endpoint, text), None)

    async def _forward(
        self, scope: Scope, body: bytes, receive: Receive, send: Send
    ) -> tuple[int, str, bytes] | None:
        """Run the route on the buffered body; its answer, if a 2xx, to be kept."""
        status, media_type, content = 500, "application/json", bytearray()

        async def capture(message: Message) -> None:
            nonlocal status, media_type
            if message["type"] == "http.response.start":
                status = message["status"]
                media_type = dict(message.get("headers", ())).get(b"content-type", b"").decode("latin-1")
            elif message["type"] == "http.response.body":
                content.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, replaying(body, receive), capture)
        return (status, media_type, bytes(content)) if 200 <= status < 300 else None

    @staticmethod
    def _stored(
        sessions: sessionmaker[Session], caller: str, endpoint: str, key: str, fingerprint: str
    ) -> IdempotencyRecord | None:
        with sessions() as session:
            record = stored(session, caller, endpoint, key, fingerprint)
            if record is not None:
                session.expunge(record)
            return record

    @staticmethod
    def _remember(
        sessions: sessionmaker[Session],
        caller: str,
        endpoint: str,
        key: str,
        fingerprint: str,
        status: int,
        media_type: str,
        content: bytes,
    ) -> None:
        text = content.decode("utf-8", "replace")
        if media_type.startswith("application/json"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                text = json.dumps({k: v for k, v in parsed.items() if k not in SECRET_FIELDS})
        try:
            with transaction(sessions) as session:
                remember(
                    session,
                    principal=caller,
                    endpoint=endpoint,
                    key=key,
                    fingerprint=fingerprint,
                    status_code=status,
                    body={"media_type": media_type, "text": text},
                    now=datetime.now(UTC),  # bookkeeping of the record, never a time of the domain
                )
        except IntegrityError:  # another process kept its answer first: retries get that one
            pass

    @staticmethod
    async def _replay(record: IdempotencyRecord, send: Send) -> None:
        kept = record.response
        headers = [
            (b"content-type", str(kept.get("media_type", "application/json")).encode("latin-1")),
            (REPLAY_HEADER.lower().encode(), b"true"),
        ]
        content = str(kept.get("text", "")).encode()
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": record.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": content})
