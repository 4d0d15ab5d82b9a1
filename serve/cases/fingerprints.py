"""Fingerprints of what a request asks for, in one normalisation (JSON, keys sorted, anything else
as its text): the Idempotency-Key check of the API compares them, and a held citizen request sent
again is found by one (migration 0017 computed it for the requests held before, with this code)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def request_hash(*parts: Any) -> str:
    """Fingerprint of what a request asks for (e.g. the photo's sha256 and the form fields)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def held_request_key(event: str, fields: dict[str, Any]) -> str:
    """What makes a citizen request held for a person the same request: its event and the GeoReport
    fields as sent (serve/api/open311.py, `same_held`); stored indexed with the request."""
    return request_hash(event, fields)
