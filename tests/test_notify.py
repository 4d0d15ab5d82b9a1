"""Notifications (issue 30, point 5): a dispatched case and a deadline about to pass reach a real local
HTTP receiver as signed webhooks, retried with backoff while it fails; an adapter class named in the
configuration (here `Recorder`, as an SMS or WeChat Work gateway would be) gets its share."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from conftest import Service
from sqlalchemy import select
from test_api_lifecycle import act, report

from serve.api.notify import NotificationSender, notify_once
from serve.cases.notify import Message, load_notify_config, sign, verify_signature
from serve.cases.orm import Notification

SECRET = "webhook-test-secret-0123456789"
SANITATION = "二七区环境卫生服务中心"


class Recorder:
    """An adapter as a deployment would write one for SMS: built from `options`, `send` per message."""

    sent: ClassVar[list[tuple[str, Message]]] = []

    def __init__(self, sender: str) -> None:
        self.sender = sender

    def send(self, message: Message) -> None:
        Recorder.sent.append((self.sender, message))


class Receiver:
    """A real HTTP server on 127.0.0.1 that answers 500 to the first `fail` requests, then 204."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                failing = len(receiver.requests) <= receiver.fail
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/streetorder"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    Recorder.sent.clear()
    yield server
    server.server.shutdown()


@pytest.fixture
def service_overrides(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> dict[str, object]:
    monkeypatch.setenv("STREETORDER_TEST_HOOK_SECRET", SECRET)
    config = {
        "targets": [
            {
                "name": "sanitation",
                "url": receiver.url,
                "secret_env": "STREETORDER_TEST_HOOK_SECRET",
                "departments": [SANITATION],
                "timeout_s": 5,
            },
            {
                "name": "sms",
                "adapter": "test_notify:Recorder",
                "options": {"sender": "12345"},
                "events": ["case.deadline_near"],
            },
        ],
        "warn_before_minutes": 60,
        "max_attempts": 3,
        "retry_base_s": 30,
    }
    path = tmp_path / "notifications.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return {"notifications": path, "notify_s": 0}


def dispatched(service: Service, code: str = "06010") -> dict[str, Any]:
    case_id = report(service) if code == "06010" else flyer(service)
    start = service.clock()
    for minutes, action in ((5, "confirm"), (10, "file"), (15, "dispatch")):
        case = act(service, case_id, start + timedelta(minutes=minutes), action)
    return case


def flyer(service: Service) -> int:
    answer = service.client.post(
        "/open311/v2/requests.json",
        data={"service_code": "07001", "lat": 34.72265, "long": 113.62762},
        headers=service.auth("report"),
    )
    number = answer.json()[0]["service_request_id"]
    cases = service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"]
    return next(int(c["id"]) for c in cases if c["number"] == number)


def state_of(service: Service) -> Any:
    return service.client.app.state.service  # type: ignore[attr-defined]


def test_a_dispatch_reaches_the_department_signed_and_retried_until_accepted(
    service: Service, receiver: Receiver
) -> None:
    receiver.fail = 1
    case = dispatched(service)
    first = notify_once(state_of(service))
    assert (first.sent, first.failed) == (0, 1) and len(receiver.requests) == 1
    assert notify_once(state_of(service)).sent == 0  # not due again for retry_base_s
    service.clock.at += timedelta(seconds=31)
    assert notify_once(state_of(service)).sent == 1
    assert notify_once(state_of(service)).sent == 0  # delivered once
    (headers, body), (headers2, body2) = receiver.requests
    assert body == body2 and headers["X-Streetorder-Delivery"] == headers2["X-Streetorder-Delivery"]
    message = json.loads(body)
    assert (message["event"], message["case"]["number"], message["case"]["department"]) == (
        "case.dispatched",
        case["number"],
        SANITATION,
    )
    assert datetime.fromisoformat(message["case"]["deadline_at"]) == datetime.fromisoformat(
        case["deadline_at"]
    )
    assert headers2["X-Streetorder-Event"] == "case.dispatched"
    now = service.clock().timestamp()
    assert verify_signature(body2, headers2["X-Streetorder-Signature"], SECRET, now)
    assert not verify_signature(body2 + b" ", headers2["X-Streetorder-Signature"], SECRET, now)
    assert not verify_signature(body2, headers2["X-Streetorder-Signature"], "another-secret-0123456", now)
    assert not verify_signature(
        body2, headers2["X-Streetorder-Signature"], SECRET, now + 3600
    )  # replayed late
    assert Recorder.sent == []  # the adapter takes deadline warnings only


def test_a_deadline_about_to_pass_is_warned_once_through_the_webhook_and_the_adapter(
    service: Service, receiver: Receiver
) -> None:
    case = dispatched(service)
    notify_once(state_of(service))  # the dispatch message
    deadline = datetime.fromisoformat(case["deadline_at"])
    service.clock.at = deadline - timedelta(minutes=61)
    notify_once(state_of(service))
    assert [b["event"] for b in receiver.bodies()] == ["case.dispatched"]  # not yet within the hour
    service.clock.at = deadline - timedelta(minutes=30)
    notify_once(state_of(service))
    service.clock.at += timedelta(minutes=10)
    notify_once(state_of(service))  # nothing twice
    assert [b["event"] for b in receiver.bodies()] == ["case.dispatched", "case.deadline_near"]
    assert [(sender, m.event, m.payload["case"]["number"]) for sender, m in Recorder.sent] == [
        ("12345", "case.deadline_near", case["number"])
    ]
    # a suspended case (挂账) has its clock stopped: no warning of a deadline it cannot reach
    suspended = dispatched(service, "07001")
    act(service, int(suspended["id"]), service.clock() + timedelta(minutes=5), "suspend", note="待审批")
    service.clock.at = datetime.fromisoformat(suspended["deadline_at"]) - timedelta(minutes=30)
    notify_once(state_of(service))
    assert [m.payload["case"]["number"] for _, m in Recorder.sent] == [case["number"]]


def test_other_departments_get_nothing_and_a_dead_receiver_is_given_up(
    service: Service, receiver: Receiver
) -> None:
    dispatched(service, "07001")  # a flyer goes to the street office: not the webhook's department
    notify_once(state_of(service))
    assert receiver.requests == []
    receiver.fail = 100
    dispatched(service)
    for _ in range(4):
        notify_once(state_of(service))
        service.clock.at += timedelta(minutes=5)
    assert len(receiver.requests) == 3  # max_attempts
    with state_of(service).sessions() as session:
        row = session.scalars(select(Notification).where(Notification.target == "sanitation")).one()
    assert row.gave_up_at is not None and row.delivered_at is None and "500" in (row.last_error or "")


def test_the_service_sends_on_its_own_timer(service: Service, receiver: Receiver) -> None:
    state = state_of(service)
    state.settings.notify_s = 0.05
    sender = NotificationSender(state).start()
    try:
        dispatched(service)
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sender.stop()
    assert [b["event"] for b in receiver.bodies()] == ["case.dispatched"]


def test_configuration_errors_name_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "n.yaml"
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    for targets, field in (
        ([{"name": "a", "url": "http://127.0.0.1:9/x", "secret_env": "NO_SUCH_SECRET"}], "secret_env"),
        ([{"name": "a", "adapter": "test_notify:Nope"}], "adapter"),
        ([{"name": "a", "adapter": "test_notify:Recorder", "events": ["case.lost"]}], "events"),
        ([{"name": "a"}], "targets[0]"),
        ([{"name": "a", "adapter": "x:Y", "event": ["case.dispatched"]}], "targets[0].event"),
        ([{"name": "a", "adapter": "x:Y"}, {"name": "a", "adapter": "x:Y"}], "names must be unique"),
        # no scheme: it loaded, and every message failed at sending, hours later
        (
            [{"name": "a", "url": "hooks.example.gov.cn/x"}],
            "targets[0].url: 'hooks.example.gov.cn/x' is not an http",
        ),
        ([{"name": "a", "url": "ftp://hooks.example.gov.cn/x"}], "targets[0].url: "),
    ):
        path.write_text(yaml.safe_dump({"targets": targets}), encoding="utf-8")
        with pytest.raises(ValueError, match=re.escape(field)):
            load_notify_config(path)
    path.write_text(yaml.safe_dump({"max_attempts": 0}), encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape("n.yaml: max_attempts: Input should be greater than")):
        load_notify_config(path)
    assert load_notify_config(tmp_path / "missing.yaml").targets == ()
    assert sign(b"{}", SECRET, 1).startswith("t=1,v1=")
