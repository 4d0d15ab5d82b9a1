"""API keys with scopes: created once, shown once, stored as a salted scrypt hash.

A key reads `so_<key_id>_<secret>`. The key id is public (lists, audit log) and finds the row; the
secret is checked against scrypt(secret, salt + server secret) in constant time. Because scrypt is
slow on purpose, a verified key is remembered in memory for a short while, and garbage never
reaches it (see `KeyVerifier`). A remembered key is still looked up on every use (one indexed read,
no hash): a revocation or a new rate by any process (the API, `streetorder keys revoke|rate`,
another worker) holds at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from serve.cases.enums import SCOPES
from serve.cases.errors import InvalidInput, NotFound, Unauthorized
from serve.cases.orm import ApiKey
from serve.cases.settings import Settings

KEY_PREFIX = "so"
MAX_NAME_LENGTH = 64  # api_keys.name, users.username and users.display_name
DEV_SECRET = "streetorder-dev-mode-secret"
WEAK_SECRETS = {"", "secret", "changeme", "change-me", "streetorder", "password", "dev", DEV_SECRET}
MIN_SECRET_LENGTH = 16
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
CACHE_SECONDS = 30.0
FAILURES_KEPT = 10_000  # failed keys remembered (a few MB at most), the oldest forgotten first
MAX_RATE_PER_MIN = 100_000  # a key's own rate, at most: ~1,700 requests a second, beyond one service's


class SecretError(RuntimeError):
    """The service must not start: its secret is missing or a well-known default."""


def server_secret(settings: Settings) -> bytes:
    """The pepper of every key hash; refuses empty, default or short secrets unless in dev mode."""
    if settings.secret not in WEAK_SECRETS and len(settings.secret) >= MIN_SECRET_LENGTH:
        return settings.secret.encode()
    if settings.dev:
        return DEV_SECRET.encode()
    raise SecretError(
        "STREETORDER_SECRET is empty, a default, or shorter than "
        f"{MIN_SECRET_LENGTH} characters; set a long random value (e.g. `python -c "
        "'import secrets; print(secrets.token_urlsafe(32))'`), or STREETORDER_DEV=1 for development only"
    )


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's public id (or `user-<id>` for a person), the name the flow log
    gives, and scopes. `admin` may do everything. People also carry their role and department
    (serve/cases/people.py decides what those allow); keys have neither, but may have a rate of
    their own (requests a minute; None: their scopes', `key_rate_per_min`)."""

    key_id: str
    name: str
    scopes: frozenset[str]
    rate_per_min: int | None = None
    user_id: int | None = None
    role: str | None = None
    department: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


# Characters a name must not hold: controls (Cc), invisible formatting (Cf: bidi overrides such as
# U+202E, zero-width spaces), surrogates, private use and unassigned code points, line and paragraph
# separators: each can forge or hide what a list or a flow log shows.
UNREADABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_name(field: str, name: str) -> str:
    """A name people read in lists and flow logs (a key's, a person's): 1 to MAX_NAME_LENGTH
    characters (the columns' width), not only spaces, and nothing in it that is not shown as
    itself: a newline or a terminal escape would forge lines in `keys list` and in logs, a
    right-to-left override would show `admin` for another name."""
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(field, f"1 to {MAX_NAME_LENGTH} characters, not only spaces, got {len(name)}")
    for char in name:
        if unicodedata.category(char) in UNREADABLE:
            raise InvalidInput(
                field,
                f"U+{ord(char):04X} is not shown as itself (control, formatting or unassigned character)",
            )
    return name


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput("scopes", f"expected one or more of {', '.join(SCOPES)}, got {scopes}")
    return sorted(set(scopes))


def check_rate(rate: int | None) -> int | None:
    """A key's own rate: None (its scopes' rate) or 1 to MAX_RATE_PER_MIN requests a minute; 0
    would shut the key out unsaid (revoke it instead), a huge one would overflow the column."""
    if rate is not None and not 1 <= rate <= MAX_RATE_PER_MIN:
        raise InvalidInput("rate_per_min", f"1 to {MAX_RATE_PER_MIN} requests a minute, got {rate}")
    return rate


def key_rate_per_min(settings: Settings, scopes: Iterable[str], own: int | None) -> int:
    """A key's rate: its own when it has one, else the highest its scopes (roles) give, at least
    the default."""
    if own is not None:
        return own
    return max([settings.key_rate_per_min, *(settings.key_rate_per_min_by_scope.get(s, 0) for s in scopes)])


def _digest(secret: str, salt: bytes, pepper: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt + pepper, **SCRYPT).hex()


def create_key(
    session: Session,
    *,
    name: str,
    scopes: list[str],
    pepper: bytes,
    now: datetime,
    rate_per_min: int | None = None,
) -> tuple[str, ApiKey]:
    """Add a key and return its plaintext (the only time it exists) with the stored row."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    row = ApiKey(
        key_id=key_id,
        name=check_name("name", name),
        scopes=check_scopes(scopes),
        salt=salt.hex(),
        hash=_digest(secret, salt, pepper),
        created_at=now,
        rate_per_min=check_rate(rate_per_min),
    )
    session.add(row)
    session.flush()
    return f"{KEY_PREFIX}_{key_id}_{secret}", row


def _key(session: Session, key_id: str) -> ApiKey:
    row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).one_or_none()
    if row is None:
        raise NotFound("API key", key_id)
    return row


def revoke_key(session: Session, key_id: str, now: datetime) -> ApiKey:
    row = _key(session, key_id)
    row.revoked_at = row.revoked_at or now
    return row


def set_key_rate(session: Session, key_id: str, rate_per_min: int | None) -> ApiKey:
    """Give a key its own rate (None: back to its scopes'); services read it on the key's next use."""
    row = _key(session, key_id)
    row.rate_per_min = check_rate(rate_per_min)
    return row


def split_key(presented: str) -> tuple[str, str]:
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or len(key_id) != 12 or not secret:
        raise Unauthorized("malformed API key: expected so_<key id>_<secret>")
    return key_id, secret


class KeyVerifier:
    """Checks presented keys against the database, remembering good ones for `cache_seconds`.

    Garbage costs nothing: a malformed key, a key id no row has (the indexed lookup comes before
    any hash; key ids are public anyway), or a key that failed within `cache_seconds` (a bounded
    memory of `failures_kept` fingerprints) is refused without scrypt. Only a well-formed key of a
    real key id with a new wrong secret costs one hash, and the caller's failures are counted per
    client by the service (429 past its limit).
    """

    def __init__(
        self, pepper: bytes, cache_seconds: float = CACHE_SECONDS, failures_kept: int = FAILURES_KEPT
    ) -> None:
        self.pepper = pepper
        self.cache_seconds = cache_seconds
        self.failures_kept = failures_kept
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._failed: OrderedDict[str, float] = OrderedDict()  # fingerprint -> until, oldest first
        self._lock = threading.Lock()

    def verify(self, session: Session, presented: str) -> Principal:
        fingerprint = hashlib.sha256(presented.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(fingerprint)
            failed_until = self._failed.get(fingerprint, 0.0)
        if hit is not None and hit[1] > now:
            return self._still_valid(session, hit[0], fingerprint)
        if failed_until > now:
            raise Unauthorized("unknown API key")
        try:
            return self._check(session, presented, fingerprint)
        except Unauthorized:
            with self._lock:
                self._failed[fingerprint] = now + self.cache_seconds
                self._failed.move_to_end(fingerprint)
                while len(self._failed) > self.failures_kept:
                    self._failed.popitem(last=False)
            raise

    def _check(self, session: Session, presented: str, fingerprint: str) -> Principal:
        key_id, secret = split_key(presented)
        row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).one_or_none()
        if row is None:
            raise Unauthorized("unknown API key")  # no hash for a key id nobody has
        salt, stored, revoked = row.salt, row.hash, row.revoked_at
        principal = Principal(row.key_id, row.name, frozenset(row.scopes), row.rate_per_min)
        session.rollback()  # the connection goes back before the slow hash: a burst must not drain the pool
        if not hmac.compare_digest(_digest(secret, bytes.fromhex(salt), self.pepper), stored):
            raise Unauthorized("unknown API key")
        if revoked is not None:
            raise Unauthorized(f"API key {key_id} was revoked")
        with self._lock:
            self._cache[fingerprint] = (principal, time.monotonic() + self.cache_seconds)
        return principal

    def _still_valid(self, session: Session, principal: Principal, fingerprint: str) -> Principal:
        """A remembered key, unless revoked (or deleted) since, with its rate as it is now: the
        memory saves the hash, never the read that another process's revocation or new rate
        shows in."""
        row = session.execute(
            select(ApiKey.revoked_at, ApiKey.rate_per_min).where(ApiKey.key_id == principal.key_id)
        ).one_or_none()
        if row is not None and row.revoked_at is None:
            if row.rate_per_min == principal.rate_per_min:
                return principal
            return replace(principal, rate_per_min=row.rate_per_min)
        with self._lock:
            self._cache.pop(fingerprint, None)
        raise Unauthorized(f"API key {principal.key_id} was revoked")
