"""`Idempotency-Key`: a retried request gets the first response back and changes nothing.

Keys belong to the caller (API key id) and the endpoint. The first response is stored in the
same transaction as the changes it reports, so either both exist or neither does; a request that
loses a race with its own retry finds the winner's record and replays it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from serve.cases.db import transaction
from serve.cases.errors import IdempotencyMismatch
from serve.cases.orm import IdempotencyRecord

REPLAY_HEADER = "Idempotent-Replayed"


def request_hash(*parts: Any) -> str:
    """Fingerprint of what a request asks for (e.g. the photo's sha256 and the form fields)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


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
