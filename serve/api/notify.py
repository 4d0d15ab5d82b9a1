"""Sending notifications on a timer: deadline warnings are queued and the outbox delivered every
`notify_s` seconds in a small thread (serve/cases/notify.py holds the rules; this only runs them)."""

from __future__ import annotations

import logging

from serve.api.periodic import Periodic
from serve.api.state import Service
from serve.cases.db import transaction
from serve.cases.notify import DeliveryReport, deliver_due, enqueue_deadlines

log = logging.getLogger("streetorder.notify")


def notify_once(service: Service) -> DeliveryReport:
    """Queue the deadline warnings now due, then send what the outbox holds."""
    now = service.clock()
    with transaction(service.sessions) as session:
        enqueue_deadlines(session, service.notify, now)
    with service.sessions() as session:
        return deliver_due(session, service.notify, now)


class NotificationSender(Periodic):
    """Runs `notify_once` every `notify_s` seconds, when targets are configured."""

    def __init__(self, service: Service) -> None:
        enabled = service.settings.notify_s > 0 and bool(service.notify.targets)
        super().__init__("notifications", service.settings.notify_s, enabled)
        self.service = service

    def tick(self) -> None:
        report = notify_once(self.service)
        if report.sent or report.failed:
            log.info(
                "notifications: %d sent, %d failed, %d given up", report.sent, report.failed, report.given_up
            )
