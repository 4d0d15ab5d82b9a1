"""Notifications: a department learns of a case dispatched to it, a handler of a deadline about to
pass. Messages go through an outbox table, so none is lost to a crash or a receiver that is down.

- `enqueue_dispatched` is called in the transaction of the dispatch step itself: the message exists
  exactly when the dispatch does.
- `enqueue_deadlines` finds open cases whose deadline falls within the warning window and queues one
  warning per case and deadline (an extension warns again for the new deadline).
- `deliver_due` sends what is due through each target's `Notifier`; a failure is retried with
  exponential backoff (`retry_base_s` · 2^attempt) until `max_attempts`, then left as failed.

Targets come from configs/notifications.yaml: outgoing webhooks (JSON POST signed with HMAC-SHA256
under a secret read from the environment, never from the file) or any adapter class named there
(`module:Class` implementing `Notifier`: SMS or WeChat Work gateways are the deployment's). A
receiver checks `X-Streetorder-Signature: t=<unix seconds>,v1=<hex>` with `verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from serve.cases.orm import Case, Notification
from serve.cases.workflow import CLOCK_RUNNING_STATES
from vision.core.config import ConfigError, ConfigModel, load_config_file

EVENTS = ("case.dispatched", "case.deadline_near")
SIGNATURE_HEADER = "X-Streetorder-Signature"
SIGNATURE_TOLERANCE_S = 300


@dataclass(frozen=True)
class Message:
    """What a target receives: the event, its case, and a unique id (receivers deduplicate by it)."""

    id: int
    event: str
    payload: dict[str, Any]


class Notifier(Protocol):
    """A way out: `send` returns when the message was accepted and raises when it was not."""

    def send(self, message: Message) -> None: ...


def sign(body: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    body: bytes, header: str, secret: str, now: float, tolerance_s: float = SIGNATURE_TOLERANCE_S
) -> bool:
    """For receivers: the signature matches the body and is recent (a replayed old message fails)."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(body, secret, timestamp).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance_s and hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class WebhookNotifier:
    """JSON POST to `url`, signed; any answer but 2xx, or no answer within `timeout_s`, is a failure."""

    url: str
    secret: str
    timeout_s: float = 10.0
    clock: Any = field(default=None, repr=False)  # () -> datetime: the signature's time

    def send(self, message: Message) -> None:
        body = json.dumps(
            {"id": message.id, "event": message.event, **message.payload}, ensure_ascii=False
        ).encode()
        timestamp = int((self.clock() if self.clock else datetime.now().astimezone()).timestamp())
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "streetorder-webhook/1",
                "X-Streetorder-Event": message.event,
                "X-Streetorder-Delivery": str(message.id),
                SIGNATURE_HEADER: sign(body, self.secret, timestamp),
            },
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
            if not 200 <= answer.status < 300:
                raise RuntimeError(f"{self.url} answered {answer.status}")


@dataclass(frozen=True)
class Target:
    name: str
    notifier: Notifier
    events: tuple[str, ...]
    departments: tuple[str, ...]  # empty: every department

    def wants(self, event: str, department: str | None) -> bool:
        return event in self.events and (not self.departments or department in self.departments)


@dataclass(frozen=True)
class NotifyConfig:
    targets: tuple[Target, ...] = ()
    warn_before: timedelta = timedelta(minutes=60)
    max_attempts: int = 6
    retry_base_s: float = 30.0


class TargetEntry(ConfigModel):
    """One receiver of notifications: a webhook (`url` + the environment variable holding its
    signing secret) or an adapter (`module:Class` with its options) for SMS or WeChat Work."""

    name: str | None = None
    events: tuple[str, ...] = EVENTS
    departments: tuple[str, ...] = ()  # empty: every department's cases
    url: str | None = None
    secret_env: str = ""
    timeout_s: float = Field(default=10, gt=0, le=120)
    adapter: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        """Checked here: a url without its scheme (sanitation.example.gov.cn/hooks) loaded and every
        message to it failed, retried and given up, hours later and only in the notifications table."""
        parts = urllib.parse.urlsplit(url) if url is not None else None
        if parts is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError(f"{url!r} is not an http:// or https:// address (https://host/path)")
        return url

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        if unknown := [e for e in events if e not in EVENTS]:
            raise ValueError(f"unknown {unknown}; expected some of {list(EVENTS)}")
        return events

    @model_validator(mode="after")
    def _one_kind(self) -> TargetEntry:
        if (self.url is None) == (self.adapter is None):
            raise ValueError("give `url` (a webhook) or `adapter` (module:Class), one of them")
        return self


class NotificationsFile(ConfigModel):
    """configs/notifications.yaml."""

    targets: tuple[TargetEntry, ...] = ()
    warn_before_minutes: float = Field(default=60, gt=0, le=7 * 24 * 60)
    max_attempts: int = Field(default=6, ge=1, le=50)
    retry_base_s: float = Field(default=30, gt=0, le=24 * 3600)

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsFile:
        names = [t.name or f"target-{i}" for i, t in enumerate(self.targets)]
        if len(set(names)) != len(names):
            raise ValueError(f"targets: names must be unique, got {names}")
        return self


class NotifyConfigError(ConfigError):
    """A notifications file that cannot be used: the message names the file, the field and what to do."""


def load_notify_config(
    path: Path, clock: Any = None, departments: tuple[str, ...] | None = None
) -> NotifyConfig:
    """configs/notifications.yaml; a missing file means no notifications. Errors name the field.

    `departments` (routing.yaml's): a target's `departments` must name some of them, or it would
    silently never hear of a case."""
    if not path.exists():
        return NotifyConfig()
    data = load_config_file(path, NotificationsFile, error=NotifyConfigError)
    targets = []
    for i, entry in enumerate(data.targets):
        where = f"{path}: targets[{i}]"
        if departments is not None and (unknown := [d for d in entry.departments if d not in departments]):
            raise NotifyConfigError(
                f"{where}.departments: {', '.join(map(repr, unknown))} is no department of routing.yaml "
                f"({', '.join(departments)}); a target of no known department hears of no case"
            )
        notifier: Notifier
        if entry.url is not None:
            secret = os.environ.get(entry.secret_env, "") if entry.secret_env else ""
            if len(secret) < 16:
                said = (
                    "is not given"
                    if not entry.secret_env
                    else f"{entry.secret_env} is not set"
                    if entry.secret_env not in os.environ
                    else f"{entry.secret_env} holds {len(secret)} character(s)"
                )
                raise NotifyConfigError(
                    f"{where}.secret_env: {said}: name an environment variable holding the webhook's "
                    "signing secret of 16+ characters and set it before starting"
                )
            notifier = WebhookNotifier(entry.url, secret, entry.timeout_s, clock)
        else:
            module, _, cls = str(entry.adapter).partition(":")
            try:
                notifier = getattr(importlib.import_module(module), cls)(**entry.options)
            except (ImportError, AttributeError, TypeError, ValueError) as err:
                raise NotifyConfigError(f"{where}.adapter: cannot make {entry.adapter}: {err}") from err
        targets.append(Target(entry.name or f"target-{i}", notifier, entry.events, entry.departments))
    return NotifyConfig(
        tuple(targets),
        timedelta(minutes=data.warn_before_minutes),
        data.max_attempts,
        data.retry_base_s,
    )


def _payload(case: Case) -> dict[str, Any]:
    return {
        "case": {
            "id": case.id,
            "number": case.number,
            "event": case.event,
            "state": str(case.state),
            "department": case.department,
            "grid_code": case.grid_code,
            "street": case.street,
            "address": case.address,
            "lat": case.lat,
            "lon": case.lon,
            "deadline_at": case.deadline_at.isoformat() if case.deadline_at else None,
        }
    }


def _enqueue(session: Session, config: NotifyConfig, event: str, case: Case, key: str, now: datetime) -> int:
    """One outbox row per wanting target; a key already queued is skipped (savepoint per row)."""
    queued = 0
    for target in config.targets:
        if not target.wants(event, case.department):
            continue
        if session.scalars(
            select(Notification.id).where(Notification.dedupe_key == f"{target.name}:{key}")
        ).first():
            continue
        try:
            with session.begin_nested():
                session.add(
                    Notification(
                        target=target.name,
                        event=event,
                        case_id=case.id,
                        dedupe_key=f"{target.name}:{key}",
                        payload=_payload(case),
                        created_at=now,
                        next_attempt_at=now,
                        attempts=0,
                    )
                )
            queued += 1
        except IntegrityError:  # queued meanwhile by another worker
            continue
    return queued


def enqueue_dispatched(session: Session, config: NotifyConfig, case: Case, now: datetime) -> int:
    """The department's message about a dispatch (or a re-dispatch after a send-back)."""
    return _enqueue(session, config, "case.dispatched", case, f"dispatched:{case.id}:{now.isoformat()}", now)


def enqueue_deadlines(session: Session, config: NotifyConfig, now: datetime) -> int:
    """Warnings for open cases whose deadline is within `warn_before` and not yet past; a suspended
    case (挂账) has its clock stopped and is warned of its deadline once resumed."""
    if not any("case.deadline_near" in t.events for t in config.targets):
        return 0
    near = session.scalars(
        select(Case).where(
            Case.state.in_([s.value for s in CLOCK_RUNNING_STATES]),
            Case.deadline_at.is_not(None),
            Case.deadline_at > now,
            Case.deadline_at <= now + config.warn_before,
        )
    )
    queued = 0
    for case in near:
        deadline = case.deadline_at.isoformat() if case.deadline_at else ""
        queued += _enqueue(session, config, "case.deadline_near", case, f"deadline:{case.id}:{deadline}", now)
    return queued


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int  # attempts that failed this round (retried later, or given up)
    given_up: int


def deliver_due(session: Session, config: NotifyConfig, now: datetime) -> DeliveryReport:
    """Send every due message once; commits after each so a crash repeats at most one send."""
    by_name = {t.name: t for t in config.targets}
    due = list(
        session.scalars(
            select(Notification)
            .where(
                Notification.delivered_at.is_(None),
                Notification.gave_up_at.is_(None),
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.id)
            .limit(200)
        )
    )
    sent = failed = given_up = 0
    for row in due:
        target = by_name.get(row.target)
        row.attempts += 1
        try:
            if target is None:
                raise RuntimeError(f"target '{row.target}' is no longer configured")
            target.notifier.send(Message(row.id, row.event, row.payload))
        except (OSError, RuntimeError, urllib.error.URLError, ValueError) as err:
            failed += 1
            row.last_error = str(err)[:2000]
            if row.attempts >= config.max_attempts:
                row.gave_up_at = now
                given_up += 1
            else:
                row.next_attempt_at = now + timedelta(seconds=config.retry_base_s * 2 ** (row.attempts - 1))
        else:
            sent += 1
            row.delivered_at = now
            row.last_error = None
        session.commit()
    return DeliveryReport(sent, failed, given_up)
