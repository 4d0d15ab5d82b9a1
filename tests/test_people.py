"""People (issue 30): accounts, console sessions with CSRF, what each role may do on every route and
every workflow step, handlers limited to their department, and extensions approved by another role.

Each person signs in through POST /v1/sessions on their own TestClient (a browser of their own:
its cookie jar holds their session) against the same real service and database.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Service, on_site
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_intake import archive  # noqa: F401  (fixture: real street photos the model finds garbage on)
from test_scan import START as INTAKE_START

from serve.cases.db import transaction
from serve.cases.enums import CaseSource
from serve.cases.findings import Finding, record_finding
from serve.cases.orm import UserSession
from serve.cases.people import create_user
from serve.cli.users import PASSWORD_ENV
from serve.cli.users import cli as users_cli

PASSWORD = "correct horse battery"
SANITATION = "二七区环境卫生服务中心"  # where exposed garbage is dispatched (configs/routing.yaml)
BRIGADE = "二七区城市管理综合执法大队"
PLACE = {"lat": 34.72265, "long": 113.62762}  # inside unit grid 410103001001005
# username -> (role, department, display name)
PEOPLE = {
    "op": ("operator", None, "受理员王芳"),
    "chief": ("dispatcher", None, "值班长李强"),
    "chief2": ("dispatcher", None, "值班长赵磊"),
    "sani": ("handler", SANITATION, "环卫张伟"),
    "brig": ("handler", BRIGADE, "执法刘洋"),
    "insp": ("inspector", None, "监督员陈静"),
    "boss": ("leader", None, "局长周敏"),
    "root": ("admin", None, "管理员"),
}
ROLES = ("op", "chief", "sani", "insp", "boss", "root")  # one person of each role


@dataclass
class People:
    service: Service
    clients: dict[str, TestClient]
    csrf: dict[str, str]
    ids: dict[str, int]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf[who], **kwargs.pop("headers", {})}
        return self.clients[who].request(method, path, headers=headers, **kwargs)

    def act(self, who: str, case_id: int, action: str, **fields: Any) -> Any:
        etag = self.service.client.get(f"/v1/cases/{case_id}", headers=self.service.auth("cases:read"))
        return self.call(
            who,
            "POST",
            f"/v1/cases/{case_id}/transitions",
            json={"action": action, **fields},
            headers={"If-Match": etag.headers["ETag"]},
        )


def sign_in(app: Any, username: str, password: str = PASSWORD) -> tuple[TestClient, Any]:
    client = TestClient(app)
    return client, client.post("/v1/sessions", json={"username": username, "password": password})


@pytest.fixture
def people(service: Service) -> People:
    state = service.client.app.state.service  # type: ignore[attr-defined]
    ids = {}
    with transaction(state.sessions) as session:
        for username, (role, department, name) in PEOPLE.items():
            ids[username] = create_user(
                session,
                username=username,
                password=PASSWORD,
                role=role,
                pepper=state.verifier.pepper,
                now=service.clock(),
                display_name=name,
                department=department,
                grids=["410103001001005"] if role == "inspector" else [],
                departments=tuple(state.domain.routing.departments),
                layout=state.domain.rules.grids,
            ).id
    clients, csrf = {}, {}
    for username in PEOPLE:
        clients[username], answer = sign_in(service.client.app, username)
        assert answer.status_code == 200, answer.text
        csrf[username] = answer.json()["csrf_token"]
    return People(service, clients, csrf, ids)


def report(service: Service, code: str = "06010", description: str = "路边一堆垃圾") -> int:
    answer = service.client.post(
        "/open311/v2/requests.json",
        data={"service_code": code, **PLACE, "description": description},
        headers=service.auth("report"),
    )
    number = answer.json()[0]["service_request_id"]
    cases = service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"]
    return next(int(c["id"]) for c in cases if c["number"] == number)


def after_photo(people: People, who: str, case_id: int, jpeg: Callable[..., bytes]) -> int:
    answer = people.call(
        who,
        "POST",
        f"/v1/cases/{case_id}/evidence",
        files={
            "file": (
                "after.jpg",
                on_site(jpeg(seed=3), PLACE["lat"], PLACE["long"], people.service.clock()),
                "image/jpeg",
            )
        },
        data={"role": "after"},
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


# --- sessions ------------------------------------------------------------------------------------


def test_sign_in_sets_an_httponly_samesite_cookie_and_changes_need_the_csrf_token(people: People) -> None:
    client, answer = sign_in(people.service.client.app, "chief")
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    body = answer.json()
    assert (body["role"], body["name"], body["username"]) == ("dispatcher", "值班长李强", "chief")
    assert "dispatch" in body["actions"] and "extend" not in body["actions"]
    me = client.get("/v1/sessions/current").json()
    assert me["csrf_token"] == body["csrf_token"] and me["role"] == "dispatcher"

    case_id = report(people.service)
    etag = client.get(f"/v1/cases/{case_id}").headers["ETag"]
    forged = client.post(  # what a page on another site could send along with the cookie
        f"/v1/cases/{case_id}/transitions", json={"action": "cancel", "note": "x"}, headers={"If-Match": etag}
    )
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["detail"]
    wrong = client.post(
        f"/v1/cases/{case_id}/transitions",
        json={"action": "cancel", "note": "x"},
        headers={"If-Match": etag, "X-CSRF-Token": people.csrf["op"]},  # another session's token
    )
    assert wrong.status_code == 403
    assert client.get(f"/v1/cases/{case_id}").json()["state"] == "reported"  # nothing changed

    assert (
        client.delete("/v1/sessions/current", headers={"X-CSRF-Token": body["csrf_token"]}).status_code == 204
    )
    assert client.get("/v1/cases").status_code == 401


def test_wrong_passwords_unknown_names_and_disabled_accounts_get_the_same_401_then_429(
    people: People,
) -> None:
    app = people.service.client.app
    answers = [sign_in(app, "chief", "wrong password!")[1], sign_in(app, "nobody")[1]]
    assert {a.status_code for a in answers} == {401}
    assert answers[0].json()["detail"] == answers[1].json()["detail"]
    for _ in range(4):
        sign_in(app, "chief", "wrong password!")
    throttled = sign_in(app, "chief")[1]  # even the right password waits now
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0

    root = people.service.auth("admin")
    disabled = people.service.client.delete("/v1/users/insp", headers=root)
    assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
    assert people.call("insp", "GET", "/v1/cases").status_code == 401  # the open session ended at once
    assert sign_in(app, "insp")[1].status_code == 401
    with people.service.client.app.state.service.sessions() as session:  # type: ignore[attr-defined]
        stored = [s.token_hash for s in session.scalars(select(UserSession))]
    assert (
        all(len(h) == 64 for h in stored)
        and people.clients["op"].cookies["streetorder_session"] not in stored
    )


def test_expired_session_is_refused(people: People) -> None:
    people.service.clock.at += timedelta(hours=12, seconds=1)
    answer = people.call("op", "GET", "/v1/cases")
    assert answer.status_code == 401 and "session has ended" in answer.json()["detail"]


# --- roles on routes -------------------------------------------------------------------------------

# (method, path, roles that may) — every other role is refused with 403
EVERYONE = set(ROLES)
LATER = "2025-10-02T10:00:00+08:00"  # a deadline after the service's clock
# (method, path, JSON body, roles that may) — every other role is refused with 403 naming its role
ROUTES: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/v1/cases", None, EVERYONE),
    ("GET", "/v1/cases.geojson", None, EVERYONE),
    ("GET", "/v1/stats", None, EVERYONE),
    ("GET", "/v1/stats/ranking", None, EVERYONE),
    ("GET", "/v1/stats/monthly-ranking", None, EVERYONE),
    ("GET", "/v1/stats/inspectors", None, EVERYONE),
    ("GET", "/v1/supervision", None, EVERYONE),
    ("GET", "/v1/extensions", None, EVERYONE),
    ("GET", "/v1/ledger.csv", None, EVERYONE),
    ("GET", "/v1/sessions/current", None, EVERYONE),
    (
        "POST",
        "/v1/supervision",
        {"grids": ["410103001001005"], "department": SANITATION, "deadline_at": LATER, "reason": "最差乱点"},
        {"chief", "root"},
    ),
    ("GET", "/v1/users", None, {"root"}),
    ("POST", "/v1/users", {"username": "newcomer", "password": PASSWORD, "role": "leader"}, {"root"}),
    ("DELETE", "/v1/users/brig", None, {"root"}),
    ("GET", "/v1/keys", None, {"root"}),
    ("POST", "/v1/keys", {"name": "camera-9", "scopes": ["detect"]}, {"root"}),
]


@pytest.mark.parametrize("who", ROLES)
def test_roles_decide_routes(people: People, who: str) -> None:
    """One role on every route of the table (as tests/test_auth.py does per scope)."""
    for method, path, body, allowed in ROUTES:
        answer = people.call(who, method, path, json=body)
        if who in allowed:
            assert answer.status_code in (200, 201), (method, path, who, answer.text)
        else:
            assert answer.status_code == 403, (method, path, who, answer.text)
            assert PEOPLE[who][0] in answer.json()["detail"]


# Each step of a case's life, and the role whose step it is: every other person is refused.
LIFE = [
    ("confirm", "op"),
    ("file", "op"),
    ("dispatch", "chief"),
    ("start", "sani"),
    ("handle", "sani"),
    ("check_fail", "insp"),
    ("handle", "sani"),
    ("check_pass", "insp"),
    ("close", "chief"),
]
# Steps another role takes too: inspectors verify reports on site (核实) as operators do at the desk.
SHARED = {("confirm", "insp")}


def test_each_step_of_a_case_is_taken_by_its_role_only_and_the_flow_log_names_the_person(
    people: People, jpeg: Callable[..., bytes]
) -> None:
    case_id = report(people.service)
    for action, owner in LIFE:
        people.service.clock.at += timedelta(minutes=5)
        fields: dict[str, Any] = {"note": "未清理干净"} if action == "check_fail" else {}
        if action == "handle":
            fields["evidence_id"] = after_photo(people, owner, case_id, jpeg)
        for other in ("op", "chief", "sani", "brig", "insp", "boss"):
            if other == owner or (action, other) in SHARED:
                continue
            refused = people.act(other, case_id, action, **fields)
            expected = 404 if other == "brig" and owner == "sani" else 403  # another department's case
            assert refused.status_code == expected, (action, other, refused.text)
        done = people.act(owner, case_id, action, **fields)
        assert done.status_code == 200, (action, owner, done.text)
        offered = people.call(owner, "GET", f"/v1/cases/{case_id}").json()["allowed_actions"]
        assert set(offered) <= set(people.call(owner, "GET", "/v1/sessions/current").json()["actions"])
    flow = people.service.client.get(f"/v1/cases/{case_id}", headers=people.service.auth("cases:read")).json()
    steps = [(f["action"], f["operator"], f["user_id"]) for f in flow["flow"][1:]]
    assert steps == [(a, PEOPLE[who][2], people.ids[who]) for a, who in LIFE]
    assert flow["state"] == "closed"


def test_evidence_is_detached_split_and_merged_by_the_roles_that_file_cases(
    people: People, jpeg: Callable[..., bytes]
) -> None:
    """The routes of serve/api/routers/regrouping.py: the operator (who verifies and files) and the
    admin may; every other role is refused naming its role, and is offered none of them."""
    case_id = report(people.service)
    photos = []
    for seed in (5, 6, 7):
        answer = people.call(
            "op",
            "POST",
            f"/v1/cases/{case_id}/evidence",
            files={"file": ("near.jpg", jpeg(seed=seed), "image/jpeg")},
            data={"role": "near"},
        )
        assert answer.status_code == 201, answer.text
        photos.append(answer.json()["id"])
    changes = [
        (f"/v1/cases/{case_id}/evidence/{photos[0]}/detach", {"reason": "拍错了"}),
        (f"/v1/cases/{case_id}/split", {"evidence_ids": [photos[1]], "reason": "另一处"}),
        (f"/v1/cases/{case_id}/merge", {"case_id": case_id + 1, "reason": "同一处"}),  # the split's case
    ]
    for who in ("chief", "sani", "insp", "boss"):
        if who != "sani":  # a handler does not see a case of no department at all
            offered = people.call(who, "GET", f"/v1/cases/{case_id}").json()["evidence_actions"]
            assert offered == [], who
        for path, body in changes:
            refused = people.call(who, "POST", path, json=body, headers={"If-Match": "*"})
            assert refused.status_code == 403, (who, path, refused.text)
            assert PEOPLE[who][0] in refused.json()["detail"]
    for who in ("op", "root"):
        assert people.call(who, "GET", f"/v1/cases/{case_id}").json()["evidence_actions"] == [
            "detach",
            "split",
            "merge",
        ]
    for path, body in changes:
        done = people.call("op", "POST", path, json=body, headers={"If-Match": "*"})
        assert done.status_code in (200, 201), (path, done.text)
        assert done.json()["flow"][-1]["operator"] == PEOPLE["op"][2]
    assert people.call("root", "GET", f"/v1/cases/{case_id + 1}").json()["state"] == "cancelled"
    case = people.call("root", "GET", f"/v1/cases/{case_id}").json()
    assert [f["action"] for f in case["flow"][-3:]] == ["detach", "split", "merge"]
    assert [f["user_id"] for f in case["flow"][-3:]] == [people.ids["op"]] * 3


def test_a_person_acts_under_their_own_name_and_a_leader_reads_only(people: People) -> None:
    case_id = report(people.service)
    posing = people.act("op", case_id, "confirm", operator="someone else")
    assert posing.status_code == 422 and posing.json()["field"] == "operator"
    assert people.call("boss", "GET", f"/v1/cases/{case_id}").json()["allowed_actions"] == []
    refused = people.act("boss", case_id, "confirm")
    assert refused.status_code == 403 and refused.json()["required_scope"] == "cases:write"
    assert people.call("op", "GET", f"/v1/cases/{case_id}").json()["allowed_actions"] == [
        "confirm",
        "correct",
        "reject",
        "cancel",
    ]


def test_handlers_see_and_touch_only_their_departments_cases(
    people: People, jpeg: Callable[..., bytes]
) -> None:
    garbage, flyer = report(people.service), report(people.service, "07001", "电线杆小广告")
    for case_id, department in ((garbage, SANITATION), (flyer, BRIGADE)):
        for action in ("confirm", "file"):
            assert people.act("op", case_id, action).status_code == 200
        assert people.act("chief", case_id, "dispatch", department=department).status_code == 200
    mine = people.call("sani", "GET", "/v1/cases").json()
    assert [c["id"] for c in mine["items"]] == [garbage] and mine["total"] == 1
    asked = people.call("sani", "GET", "/v1/cases", params={"department": BRIGADE}).json()
    assert asked["total"] == 0  # asking for another department's cases gives none
    geo = people.call("sani", "GET", "/v1/cases.geojson").json()
    assert [f["id"] for f in geo["features"]] == [garbage]
    assert people.call("sani", "GET", f"/v1/cases/{flyer}").status_code == 404
    assert people.call("brig", "GET", f"/v1/cases/{flyer}").status_code == 200
    photo = after_photo(people, "brig", flyer, jpeg)
    assert people.call("sani", "GET", f"/v1/evidence/{photo}").status_code == 404
    assert people.call("brig", "GET", f"/v1/evidence/{photo}").status_code == 200
    foreign = people.call(
        "sani",
        "POST",
        f"/v1/cases/{flyer}/evidence",
        files={"file": ("x.jpg", jpeg(seed=1), "image/jpeg")},
        data={"role": "after"},
    )
    assert foreign.status_code == 404


def test_extensions_are_asked_by_one_role_and_granted_by_another(people: People) -> None:
    case_id = report(people.service)
    for action, who in LIFE[:4]:
        people.service.clock.at += timedelta(minutes=5)
        assert people.act(who, case_id, action).status_code == 200
    before = people.call("sani", "GET", f"/v1/cases/{case_id}").json()["deadline_at"]
    direct = people.act("sani", case_id, "extend", extend_by=2)
    assert direct.status_code == 403 and "/extensions" in direct.json()["detail"]
    assert people.act("chief", case_id, "extend", extend_by=2).status_code == 403

    asked = people.call(
        "sani", "POST", f"/v1/cases/{case_id}/extensions", json={"extend_by": 2, "note": "车辆故障"}
    )
    assert asked.status_code == 201 and asked.json()["state"] == "pending"
    request_id = asked.json()["id"]
    again = people.call(
        "sani", "POST", f"/v1/cases/{case_id}/extensions", json={"extend_by": 1, "note": "再延"}
    )
    assert again.status_code == 409
    assert (
        people.call(
            "op", "POST", f"/v1/cases/{case_id}/extensions", json={"extend_by": 1, "note": "x"}
        ).status_code
        == 403
    )

    decision = f"/v1/extensions/{request_id}/decision"
    for who in ("sani", "op", "insp", "boss"):  # the asker, and roles that do not decide
        assert people.call(who, "POST", decision, json={"approve": True}).status_code == 403, who
    pending = people.call("chief", "GET", "/v1/extensions", params={"state": "pending"}).json()
    assert [p["id"] for p in pending] == [request_id]
    people.service.clock.at += timedelta(minutes=5)
    granted = people.call("chief", "POST", decision, json={"approve": True, "note": "同意"})
    assert granted.status_code == 200 and granted.json()["decided_by"] == "值班长李强"
    assert people.call("chief", "POST", decision, json={"approve": False}).status_code == 409
    case = people.call("sani", "GET", f"/v1/cases/{case_id}").json()
    assert case["deadline_at"] > before and case["state"] == "handling"
    step = case["flow"][-1]
    assert (step["action"], step["operator"], step["user_id"]) == (
        "extend",
        "值班长李强",
        people.ids["chief"],
    )
    assert "环卫张伟" in step["note"] and "车辆故障" in step["note"]
    assert [e["state"] for e in case["extensions"]] == ["approved"]

    # a dispatcher's own request goes to another role: not to a fellow dispatcher, to the admin
    mine = people.call(
        "chief", "POST", f"/v1/cases/{case_id}/extensions", json={"extend_by": 1, "note": "暴雨"}
    )
    decision = f"/v1/extensions/{mine.json()['id']}/decision"
    assert people.call("chief2", "POST", decision, json={"approve": True}).status_code == 403
    refused = people.call("root", "POST", decision, json={"approve": False, "note": "不同意"})
    assert refused.status_code == 200 and refused.json()["state"] == "refused"
    assert people.call("sani", "GET", f"/v1/cases/{case_id}").json()["deadline_at"] == case["deadline_at"]


def test_users_cli_without_a_terminal_or_a_password_says_how_to_give_one(
    service: Service, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from serve.cases.settings import get_settings

    monkeypatch.setenv("STREETORDER_SECRET", service.settings.secret)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a cron job, a pipe: getpass meets the end of input
    get_settings.cache_clear()
    try:
        assert users_cli(["--db", service.settings.db_url, "create", "night", "--role", "admin"]) == 1
    finally:
        get_settings.cache_clear()
    assert f"no password for night: run it in a terminal or set {PASSWORD_ENV}" in capsys.readouterr().err


def test_users_cli_makes_the_first_admin_who_can_then_sign_in(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serve.cases.settings import get_settings

    monkeypatch.setenv("STREETORDER_SECRET", service.settings.secret)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    get_settings.cache_clear()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            db = ["--db", service.settings.db_url]
            assert users_cli([*db, "create", "first", "--role", "admin", "--name", "首任管理员"]) == 0
            assert users_cli([*db, "create", "h1", "--role", "handler"]) == 1  # a handler needs a department
            assert users_cli([*db, "create", "u" * 65, "--role", "admin"]) == 1  # wider than the column
            assert users_cli([*db, "create", "u2", "--role", "admin", "--name", "名" * 65]) == 1
            assert users_cli([*db, "create", "h1", "--role", "handler", "--department", SANITATION]) == 0
            assert users_cli(["disable", "h1", *db]) == 0  # --db after the verb, as scan takes it
            assert users_cli([*db, "disable", "first"]) == 1  # the last admin: nobody could manage people
            assert users_cli([*db, "list"]) == 0
    finally:
        get_settings.cache_clear()
    assert "disabled" in out.getvalue().splitlines()[-1]
    client, answer = sign_in(service.client.app, "first")
    assert answer.status_code == 200 and answer.json()["role"] == "admin"
    made = client.post(
        "/v1/users",
        json={"username": "wang", "password": PASSWORD, "role": "operator", "display_name": "王芳"},
        headers={"X-CSRF-Token": answer.json()["csrf_token"]},
    )
    assert made.status_code == 201 and "password_hash" not in made.json()
    csrf = {"X-CSRF-Token": answer.json()["csrf_token"]}
    for body, field in (
        ({"role": "operator", "grids": ["410103001001005"]}, "grids"),  # only inspectors have grids
        ({"role": "inspector", "grids": ["410103001009999"]}, "grids"),  # not a grid of the layout
        ({"role": "handler", "department": "不存在的部门"}, "department"),
        ({"role": "leader", "department": SANITATION}, "department"),
    ):
        refused = client.post(
            "/v1/users", json={"username": "x1", "password": PASSWORD, **body}, headers=csrf
        )
        assert refused.status_code == 422 and refused.json()["field"] == field, body
    taken = client.post(
        "/v1/users", json={"username": "wang", "password": PASSWORD, "role": "leader"}, headers=csrf
    )
    assert taken.status_code == 409
    assert sign_in(service.client.app, "h1")[1].status_code == 401


# --- supervision ---------------------------------------------------------------------------------

SPOT = "410103001001005"  # the grid of PLACE


def test_a_case_sent_back_leaves_the_department_that_returned_it(people: People) -> None:
    """回退: a department returns a case that is not its job to the dispatcher. The case kept that
    department: its handlers still listed it and opened it, `GET /v1/cases?department=` counted it
    there, and Open311 told the citizen that department was responsible (agency_responsible) for a
    case no department held ("已立案，待派遣"), until someone dispatched it again."""
    case_id = report(people.service)
    number = people.service.client.get(f"/v1/cases/{case_id}", headers=people.service.auth("cases:read"))
    for who, action in (("op", "confirm"), ("op", "file"), ("chief", "dispatch"), ("sani", "start")):
        people.service.clock.at += timedelta(minutes=5)
        assert people.act(who, case_id, action).status_code == 200
    people.service.clock.at += timedelta(minutes=5)
    returned = people.act("sani", case_id, "send_back", note="不属于本单位职责")
    assert returned.status_code == 200, returned.text
    assert (returned.json()["state"], returned.json()["department"]) == ("filed", None)

    assert people.call("sani", "GET", f"/v1/cases/{case_id}").status_code == 404
    assert people.call("sani", "GET", "/v1/cases").json()["total"] == 0
    by_department = people.call("chief", "GET", "/v1/cases", params={"department": SANITATION}).json()
    assert by_department["total"] == 0
    case = people.call("chief", "GET", f"/v1/cases/{case_id}").json()
    assert case["suggested_department"] == SANITATION and case["allowed_actions"][0] == "dispatch"
    public = people.service.client.get(f"/open311/v2/requests/{number.json()['number']}.json").json()[0]
    assert public["agency_responsible"] is None and public["status_notes"].startswith("已立案，待派遣")

    people.service.clock.at += timedelta(minutes=5)
    assert people.act("chief", case_id, "dispatch", department=BRIGADE).status_code == 200
    assert people.call("brig", "GET", f"/v1/cases/{case_id}").status_code == 200
    assert people.call("sani", "GET", f"/v1/cases/{case_id}").status_code == 404


def test_a_step_refused_in_the_case_s_state_offers_what_the_caller_may_do(people: People) -> None:
    """A handler's `handle` on a case nobody started was refused (409) offering `suspend`, `extend`,
    `cancel` and `force_close` too, which their role may not take (403 if tried): the console printed
    them as what could be done. It offers what `allowed_actions` of GET offers them."""
    case_id = report(people.service)
    for who, action in (("op", "confirm"), ("op", "file"), ("chief", "dispatch")):
        assert people.act(who, case_id, action).status_code == 200
    refused = people.act("sani", case_id, "handle")
    assert refused.status_code == 409, refused.text
    offered = people.call("sani", "GET", f"/v1/cases/{case_id}").json()["allowed_actions"]
    assert refused.json()["allowed_actions"] == offered == ["send_back", "start"]
    closing = people.act("chief", case_id, "close")  # a dispatcher: what they may do in `dispatched`
    assert closing.status_code == 409
    assert closing.json()["allowed_actions"] == ["suspend", "cancel", "force_close"]


def test_a_pending_extension_ends_when_the_case_is_sent_back_or_finished(people: People) -> None:
    """A handler asked for 8 more hours and then sent the case back (回退); the request stayed pending.
    The department the case went to next could not ask for its own time (409: one pending request
    per case), its handler's list showed the other department's request, and the dispatcher's
    approval moved the new department's deadline by the 8 hours the other had asked for."""
    case_id = report(people.service)
    for who, action in (("op", "confirm"), ("op", "file"), ("chief", "dispatch"), ("sani", "start")):
        assert people.act(who, case_id, action).status_code == 200
    asked = people.call(
        "sani", "POST", f"/v1/cases/{case_id}/extensions", json={"extend_by": 8, "note": "人手不足"}
    )
    assert asked.status_code == 201, asked.text
    assert people.act("sani", case_id, "send_back", note="不属于本单位职责").status_code == 200
    request = people.call("chief", "GET", "/v1/extensions").json()[0]
    assert request["state"] == "refused" and request["decided_by"] == "环卫张伟"
    assert request["decision_note"] == "withdrawn: the case was sent back (回退) by 环卫张伟"
    assert people.call("chief", "GET", "/v1/extensions", params={"state": "pending"}).json() == []
    late = people.call(
        "chief", "POST", f"/v1/extensions/{asked.json()['id']}/decision", json={"approve": True}
    )
    assert late.status_code == 409, late.text

    assert people.act("chief", case_id, "dispatch", department=BRIGADE).status_code == 200
    due = people.call("chief", "GET", f"/v1/cases/{case_id}").json()["deadline_at"]
    own = people.call(
        "brig", "POST", f"/v1/cases/{case_id}/extensions", json={"extend_by": 1, "note": "需协调"}
    )
    assert own.status_code == 201, own.text
    assert people.act("chief", case_id, "force_close", note="已由社区清理").status_code == 200
    ended = people.call("chief", "GET", "/v1/extensions").json()[-1]
    assert (ended["id"], ended["state"]) == (own.json()["id"], "refused")
    assert ended["decision_note"] == "withdrawn: the case was force closed by 值班长李强"
    assert people.call("chief", "GET", f"/v1/cases/{case_id}").json()["deadline_at"] == due


def walk(people: People, case_id: int, steps: list[tuple[str, str]], jpeg: Callable[..., bytes]) -> None:
    """Take `steps` (action, who) five minutes apart, each by its role."""
    for action, who in steps:
        people.service.clock.at += timedelta(minutes=5)
        fields: dict[str, Any] = (
            {"note": "不属实"} if action in ("reject", "cancel", "suspend", "force_close") else {}
        )
        if action == "handle":
            fields["evidence_id"] = after_photo(people, who, case_id, jpeg)
        answer = people.act(who, case_id, action, **fields)
        assert answer.status_code == 200, (action, who, answer.text)


def test_a_worst_spot_is_flagged_assigned_and_closed_only_by_a_check_once_cleared(
    people: People, jpeg: Callable[..., bytes]
) -> None:
    cases = [report(people.service), report(people.service, "06042", "垃圾桶满溢")]
    assert people.call("chief", "GET", "/v1/stats/worst-spots").json()["spots"] == []  # in review
    for case_id in cases:  # filed (立案): now problems of the grid
        walk(people, case_id, [("confirm", "op"), ("file", "op")], jpeg)
    worst = people.call("chief", "GET", "/v1/stats/worst-spots").json()["spots"][0]
    assert (worst["grid_code"], worst["open_cases"]) == (SPOT, 2)
    deadline = (people.service.clock() + timedelta(hours=2)).isoformat()
    body = {
        "grids": [SPOT],
        "department": SANITATION,
        "deadline_at": deadline,
        "reason": "2025-09-3 最差乱点",
    }
    for who, status in (("op", 403), ("boss", 403), ("sani", 403)):
        assert people.call(who, "POST", "/v1/supervision", json=body).status_code == status, who
    bad = people.call("chief", "POST", "/v1/supervision", json={**body, "grids": ["410103001009999"]})
    assert bad.status_code == 422 and bad.json()["field"] == "grids"
    made = people.call("chief", "POST", "/v1/supervision", json=body)
    assert made.status_code == 201, made.text
    item = made.json()
    assert (item["kind"], item["name"], item["open_cases_at_start"], item["opened_by"]) == (
        "spot",
        "汝河社区第5网格",
        2,
        "值班长李强",
    )
    later = (people.service.clock() + timedelta(hours=3)).isoformat()
    assigned = people.call(
        "chief", "PATCH", f"/v1/supervision/{item['id']}", json={"department": BRIGADE, "deadline_at": later}
    )
    assert assigned.json()["department"] == BRIGADE and assigned.json()["deadline_at"] > item["deadline_at"]

    close = f"/v1/supervision/{item['id']}/close"
    refused = people.call("insp", "POST", close, json={"note": "现场仍有垃圾"})
    assert refused.status_code == 409 and "2 case(s) still open" in refused.json()["detail"]
    assert people.call("sani", "POST", close, json={"note": "x"}).status_code == 403
    for case_id in cases:
        people.service.clock.at += timedelta(minutes=5)
        assert people.act("op", case_id, "cancel", note="已清理").status_code == 200
    people.service.clock.at += timedelta(hours=4)  # past the deadline: shown as overdue while open
    shown = people.call("boss", "GET", "/v1/supervision", params={"state": "open"}).json()
    assert [(i["id"], i["overdue"], i["open_cases"]) for i in shown] == [(item["id"], True, 0)]
    closed = people.call("insp", "POST", close, json={"note": "现场已清理干净"})
    assert closed.status_code == 200, closed.text
    assert (closed.json()["state"], closed.json()["closed_by"], closed.json()["overdue"]) == (
        "closed",
        "监督员陈静",
        False,
    )
    assert people.call("insp", "POST", close, json={"note": "again"}).status_code == 409
    assert people.call("boss", "GET", "/v1/supervision", params={"state": "open"}).json() == []


def test_an_ai_finding_awaiting_review_counts_in_no_supervision_figure(
    people: People, jpeg: Callable[..., bytes], tmp_path: Any
) -> None:
    """An AI finding counts nowhere until a person files it (README, "Cases"): the supervision items
    counted it among their grid's open cases (at flagging and now) and a check could not close the
    item while it waited for review, though the worst spots that chose the grid did not count it."""
    filed = report(people.service)
    walk(people, filed, [("confirm", "op"), ("file", "op")], jpeg)
    state = people.service.client.app.state.service  # type: ignore[attr-defined]
    photo = tmp_path / "patrol.jpg"
    photo.write_bytes(jpeg(seed=7))
    with transaction(state.sessions) as session:
        finding = finding_at_place(people, photo, "overflowing_bin", model_version="street-v1")
        pending = record_finding(session, finding, state.domain.rules).case
        assert (pending.state, pending.ai_review) == ("reported", "pending")
    [worst] = people.call("chief", "GET", "/v1/stats/worst-spots").json()["spots"]
    assert (worst["grid_code"], worst["open_cases"]) == (SPOT, 1)
    body = {"grids": [SPOT], "department": SANITATION, "reason": "最差乱点"}
    deadline = (people.service.clock() + timedelta(hours=2)).isoformat()
    item = people.call("chief", "POST", "/v1/supervision", json={**body, "deadline_at": deadline}).json()
    assert (item["open_cases_at_start"], item["open_cases"]) == (1, 1), item
    people.service.clock.at += timedelta(minutes=5)
    assert people.act("op", filed, "cancel", note="已清理").status_code == 200
    [shown] = people.call("boss", "GET", "/v1/supervision").json()
    assert shown["open_cases"] == 0, shown
    closed = people.call("insp", "POST", f"/v1/supervision/{item['id']}/close", json={"note": "已清理"})
    assert closed.status_code == 200, closed.text


@pytest.mark.parametrize("deadline", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_supervision_deadline_with_no_utc_time_is_a_422(people: People, deadline: str) -> None:
    """Year 9999 at -14:00 has no UTC time: storing it failed (500) on creating and on reassigning."""
    body = {"grids": [SPOT], "department": SANITATION, "deadline_at": deadline, "reason": "最差乱点"}
    made = people.call("chief", "POST", "/v1/supervision", json=body)
    assert made.status_code == 422 and "deadline_at" in made.json()["detail"], made.text
    good = (people.service.clock() + timedelta(hours=2)).isoformat()
    item = people.call("chief", "POST", "/v1/supervision", json={**body, "deadline_at": good}).json()
    moved = people.call("chief", "PATCH", f"/v1/supervision/{item['id']}", json={"deadline_at": deadline})
    assert moved.status_code == 422 and "deadline_at" in moved.json()["detail"], moved.text
    [kept] = people.call("boss", "GET", "/v1/supervision").json()
    assert datetime.fromisoformat(kept["deadline_at"]) == datetime.fromisoformat(item["deadline_at"])


def test_monthly_district_ranking_counts_problems_per_km2(people: People, jpeg: Callable[..., bytes]) -> None:
    kept, rejected = report(people.service), report(people.service, "06042", "垃圾桶满溢")
    pending = report(people.service, "09005", "店外经营")  # awaiting review: no problem yet
    walk(people, kept, [("confirm", "op"), ("file", "op")], jpeg)
    walk(people, rejected, [("reject", "op")], jpeg)
    ranking = people.call("boss", "GET", "/v1/stats/monthly-ranking", params={"month": "2025-09"}).json()
    [district] = ranking["districts"]
    assert (district["rank"], district["district"], district["problems"]) == (1, "二七区", 1)
    assert district["problems_per_km2"] == pytest.approx(1 / district["area_km2"])
    assert ranking["since"].startswith("2025-09-01T00:00:00") and ranking["until"].startswith("2025-10-01")
    default = people.call("boss", "GET", "/v1/stats/monthly-ranking").json()  # the clock's month
    assert default["month"] == "2025-09" and default["districts"][0]["problems"] == 1
    october = people.call("boss", "GET", "/v1/stats/monthly-ranking", params={"month": "2025-10"}).json()
    assert october["districts"][0]["problems"] == 0
    for month in ("2025-13", "9999-12", "0001-01"):  # no such month; beyond the computable years
        for path in ("/v1/stats/monthly-ranking", "/v1/stats/inspectors"):
            assert people.call("boss", "GET", path, params={"month": month}).status_code == 422
    assert kept and pending


def finding_at_place(people: People, photo: Path, event: str, **fields: Any) -> Finding:
    """A finding of `event` on `photo` at PLACE, seen now: a case in the inspector's grid."""
    return Finding(
        event=event,
        lat=PLACE["lat"],
        lon=PLACE["long"],
        seen_at=people.service.clock(),
        photo_path=str(photo),
        photo_sha256=hashlib.sha256(photo.read_bytes()).hexdigest(),
        **fields,
    )


def test_inspector_metrics_valid_reports_misses_and_checks(
    people: People, jpeg: Callable[..., bytes], tmp_path: Any
) -> None:
    """Three patrol reports by the inspector (one confirmed, one rejected, one pending), one citizen
    report in their grid they missed, and one check they made."""
    state = people.service.client.app.state.service  # type: ignore[attr-defined]
    photo = tmp_path / "patrol.jpg"
    photo.write_bytes(jpeg(seed=5))
    own = []
    with transaction(state.sessions) as session:
        for event in ("exposed_garbage", "overflowing_bin", "street_vending"):
            finding = finding_at_place(
                people,
                photo,
                event,
                source=CaseSource.INSPECTOR,
                reporter="监督员陈静",
                reporter_id=people.ids["insp"],
            )
            own.append(record_finding(session, finding, state.domain.rules).case.id)
    missed = report(people.service, "07001", "电线杆小广告")  # a citizen's, in the inspector's grid
    walk(people, own[0], [*LIFE[:4], ("handle", "sani"), ("check_pass", "insp")], jpeg)
    walk(people, own[1], [("reject", "op")], jpeg)
    walk(people, missed, [("confirm", "op")], jpeg)

    rows = people.call("boss", "GET", "/v1/stats/inspectors", params={"month": "2025-09"}).json()[
        "inspectors"
    ]
    [row] = rows
    assert row["username"] == "insp" and row["grids"] == [SPOT]
    counts = {
        k: row[k] for k in ("reports", "valid", "rejected", "found", "missed", "checks", "checks_on_time")
    }
    assert counts == {
        "reports": 3,
        "valid": 1,
        "rejected": 1,
        "found": 1,
        "missed": 1,
        "checks": 1,
        "checks_on_time": 1,
    }
    assert (row["valid_report_rate"], row["miss_rate"], row["on_time_check_rate"]) == (0.5, 0.5, 1.0)
    assert (row["verifies"], row["on_time_verify_rate"]) == (0, None)  # the operator verified these
    flow = people.call("boss", "GET", f"/v1/cases/{own[0]}").json()["flow"]
    assert (flow[0]["operator"], flow[0]["user_id"]) == ("监督员陈静", people.ids["insp"])


def test_inspectors_verify_reports_on_site_but_not_their_own(
    people: People, jpeg: Callable[..., bytes], tmp_path: Any
) -> None:
    """核实: an inspector confirms, corrects or rejects a citizen's report as an operator does, and
    each verification is on time or late by the verify stage limit (30 min); their own patrol report
    is verified by someone else: not offered to them, refused naming why, still the operator's."""
    state = people.service.client.app.state.service  # type: ignore[attr-defined]
    photo = tmp_path / "patrol.jpg"
    photo.write_bytes(jpeg(seed=5))
    with transaction(state.sessions) as session:
        finding = finding_at_place(
            people, photo, "street_vending", source=CaseSource.INSPECTOR, reporter_id=people.ids["insp"]
        )
        own = record_finding(session, finding, state.domain.rules).case.id
    quick, slow = report(people.service), report(people.service, "06042", "垃圾桶满溢")  # other classes
    assert len({own, quick, slow}) == 3

    assert "confirm" in people.call("insp", "GET", f"/v1/cases/{quick}").json()["allowed_actions"]
    offered = people.call("insp", "GET", f"/v1/cases/{own}").json()["allowed_actions"]
    assert not {"confirm", "correct", "reject"} & set(offered)
    refused = people.act("insp", own, "confirm")
    assert refused.status_code == 403 and "themselves" in refused.json()["detail"], refused.text
    assert people.call("boss", "GET", f"/v1/cases/{own}").json()["state"] == "reported"

    walk(people, quick, [("confirm", "insp")], jpeg)  # 5 min after the report
    people.service.clock.at += timedelta(minutes=40)
    walk(people, slow, [("reject", "insp")], jpeg)  # 50 min after it
    walk(people, own, [("confirm", "op")], jpeg)
    flow = people.call("boss", "GET", f"/v1/cases/{quick}").json()["flow"]
    step = flow[-1]
    assert (step["action"], step["user_id"], step["overdue"]) == ("confirm", people.ids["insp"], False)

    [row] = people.call("boss", "GET", "/v1/stats/inspectors", params={"month": "2025-09"}).json()[
        "inspectors"
    ]
    assert (row["verifies"], row["verifies_on_time"], row["on_time_verify_rate"]) == (2, 1, 0.5)
    assert (row["reports"], row["valid"], row["valid_report_rate"]) == (1, 1, 1.0)  # the operator's verify


def test_inspector_metrics_count_auto_filed_findings_as_valid(
    people: People, jpeg: Callable[..., bytes], tmp_path: Any
) -> None:
    """A class filed without review (`auto_file`) is valid like a confirmed one: the inspector's own
    auto-filed patrol finding is a valid report they found, a camera's in their grid one they missed;
    a report confirmed and then not filed is valid, not also rejected."""
    import dataclasses

    from serve.cases.workflow import AutoFiling
    from vision.core.boxes import Box

    state = people.service.client.app.state.service  # type: ignore[attr-defined]
    rules = dataclasses.replace(
        state.domain.rules, auto_filing=AutoFiling({"exposed_garbage": 0.5, "overflowing_bin": 0.5})
    )
    photo = tmp_path / "patrol.jpg"
    photo.write_bytes(jpeg(seed=6))
    with transaction(state.sessions) as session:
        theirs, cameras = (CaseSource.INSPECTOR, people.ids["insp"]), (CaseSource.VIDEO, None)
        for event, (source, reporter_id) in (("exposed_garbage", theirs), ("overflowing_bin", cameras)):
            finding = finding_at_place(
                people,
                photo,
                event,
                boxes=(Box((10.0, 10.0, 90.0, 90.0), 0.8, "garbage"),),
                model_version="street-v1",
                source=source,
                reporter_id=reporter_id,
            )
            assert record_finding(session, finding, rules).case.auto_filed
        # their finding of a class filed after review: confirmed, then not filed (不予立案): valid still
        vending = finding_at_place(
            people,
            photo,
            "street_vending",
            model_version="street-v1",
            source=CaseSource.INSPECTOR,
            reporter_id=people.ids["insp"],
        )
        declined = record_finding(session, vending, rules).case.id
    walk(people, declined, [("confirm", "op"), ("reject", "op")], jpeg)

    [row] = people.call("boss", "GET", "/v1/stats/inspectors", params={"month": "2025-09"}).json()[
        "inspectors"
    ]
    counts = {k: row[k] for k in ("reports", "valid", "rejected", "found", "missed")}
    assert counts == {"reports": 2, "valid": 2, "rejected": 0, "found": 2, "missed": 1}
    assert (row["valid_report_rate"], row["miss_rate"]) == (1.0, 1 / 3)


# --- the problem ledger --------------------------------------------------------------------------


def test_ledger_lists_each_case_with_its_closing_evidence_as_csv_and_xlsx(
    people: People, jpeg: Callable[..., bytes]
) -> None:
    from openpyxl import load_workbook

    closed = report(people.service)
    walk(people, closed, [*LIFE[:4], ("handle", "sani"), ("check_pass", "insp"), ("close", "chief")], jpeg)
    sneaky = report(people.service, "07001", "电线杆小广告")
    people.service.clock.at += timedelta(minutes=5)
    formula = '=HYPERLINK("http://x")'  # a note a spreadsheet would run as a formula
    assert people.act("chief", sneaky, "force_close", note=formula).status_code == 200
    params = {"since": "2025-09-01", "until": "2025-10-01"}

    answer = people.call("boss", "GET", "/v1/ledger.csv", params=params)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert 'filename="ledger-2025-09-01-2025-09-30.csv"' in answer.headers["content-disposition"]
    assert answer.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert len(rows) == 2
    row = next(
        r for r in rows if r["案卷号"] == people.call("boss", "GET", f"/v1/cases/{closed}").json()["number"]
    )
    case = people.call("boss", "GET", f"/v1/cases/{closed}").json()
    after = [e["id"] for e in case["evidence"] if e["role"] == "after"]
    assert (row["案卷号"], row["问题类别"], row["状态"], row["责任部门"]) == (
        case["number"],
        "暴露垃圾",
        "已结案",
        SANITATION,
    )
    assert (row["处置人"], row["核查人"], row["结案人"], row["是否超期"]) == (
        "环卫张伟",
        "监督员陈静",
        "值班长李强",
        "否",
    )
    assert row["处置后照片"] == f"http://testserver/v1/evidence/{after[0]}"
    # the position's system is in its header: AMap or Baidu would read bare degrees as their own
    position = (float(row["纬度（WGS-84）"]), float(row["经度（WGS-84）"]))
    assert position == pytest.approx((case["lat"], case["lon"]), abs=1e-7)
    assert next(r for r in rows if r is not row)["销号说明"] == "'" + formula

    book = load_workbook(io.BytesIO(people.call("boss", "GET", "/v1/ledger.xlsx", params=params).content))
    assert book.sheetnames == ["问题台账", "挂牌督办"]
    sheet = book["问题台账"]
    headers = [c.value for c in sheet[1]]
    assert headers[0] == "案卷号" and len(headers) == 28 and sheet.max_row == 3
    by_number = {r[0].value: r for r in sheet.iter_rows(min_row=2)}
    mine = by_number[case["number"]]
    photo = mine[headers.index("处置后照片")]
    assert photo.hyperlink.target == row["处置后照片"]
    assert mine[headers.index("结案时间")].value.isoformat(sep=" ") == row["结案时间"]
    forced = next(r for n, r in by_number.items() if n != case["number"])[headers.index("销号说明")]
    assert forced.data_type == "s" and forced.value == "'" + formula

    by_department = people.call("boss", "GET", "/v1/ledger.csv", params={**params, "department": BRIGADE})
    assert len(list(csv.DictReader(io.StringIO(by_department.content.decode("utf-8-sig"))))) == 0
    handler = people.call("sani", "GET", "/v1/ledger.csv", params=params)  # their department's only
    assert [r["案卷号"] for r in csv.DictReader(io.StringIO(handler.content.decode("utf-8-sig")))] == [
        case["number"]
    ]
    street = people.call("boss", "GET", "/v1/ledger.csv", params={**params, "street": "别的街道"})
    assert len(street.content.decode("utf-8-sig").splitlines()) == 1  # the header alone
    refused = people.call(
        "boss", "GET", "/v1/ledger.csv", params={"since": "2025-10-01", "until": "2025-09-01"}
    )
    assert refused.status_code == 422 and refused.json()["field"] == "since/until"


def test_the_ledger_calls_no_suspended_case_overdue(people: People, jpeg: Callable[..., bytes]) -> None:
    """挂账 stops the clock: an hour past the deadline it had when suspended, the case is not overdue,
    nor is it when force-closed then (nor in the on-time closing rate)."""
    suspended = report(people.service)
    walk(people, suspended, [*LIFE[:4], ("suspend", "chief")], jpeg)
    deadline = people.call("boss", "GET", f"/v1/cases/{suspended}").json()["deadline_at"]
    people.service.clock.at = datetime.fromisoformat(deadline) + timedelta(hours=1)
    params = {"since": "2025-09-01", "until": "2025-10-01"}
    for state, action in (("挂账", None), ("强制结案", "force_close")):
        if action:
            walk(people, suspended, [(action, "chief")], jpeg)
        ledger = people.call("boss", "GET", "/v1/ledger.csv", params=params).content.decode("utf-8-sig")
        [row] = csv.DictReader(io.StringIO(ledger))
        assert (row["状态"], row["是否超期"]) == (state, "否")
    total = people.call("boss", "GET", "/v1/stats").json()["total"]
    assert (total["closed"], total["closed_on_time"]) == (1, 1)


def test_an_inspectors_patrol_photo_opens_cases_in_their_name(people: People, archive: Path) -> None:  # noqa: F811
    """POST /v1/reports with the inspector's session (and CSRF token): the real model on a real street
    photo; the cases it opens carry the inspector in their first flow-log step and count as theirs."""
    people.service.clock.at = INTAKE_START + timedelta(days=1)  # the photo's EXIF day, then a day later
    client, answer = sign_in(people.service.client.app, "insp")
    csrf = {"X-CSRF-Token": answer.json()["csrf_token"]}
    sent = client.post(
        "/v1/reports",
        files={"file": ("p0.jpg", (archive / "p0.jpg").read_bytes(), "image/jpeg")},
        headers=csrf,
    )
    assert sent.status_code == 200, sent.text
    cases = [c for c in sent.json()["cases"] if c["created"]]
    assert cases, "the model found nothing to file on the sample photo"
    for made in cases:
        first = client.get(f"/v1/cases/{made['id']}").json()["flow"][0]
        assert (first["action"], first["operator"], first["user_id"]) == (
            "report",
            "监督员陈静",
            people.ids["insp"],
        )
    month = f"{INTAKE_START:%Y-%m}"
    [row] = client.get("/v1/stats/inspectors", params={"month": month}).json()["inspectors"]
    assert row["reports"] == len(cases) and row["valid_report_rate"] is None  # none reviewed yet
    forged = client.post("/v1/reports", files={"file": ("p0.jpg", b"x", "image/jpeg")})  # no CSRF token
    assert forged.status_code == 403


def test_a_held_citizen_request_is_placed_by_the_roles_that_file_cases(people: People) -> None:
    """Placing files the request as a case: a handler (cases:write, for its own department's cases)
    placed one in any grid; the dispatcher, inspector and leader may not either. Only the roles that
    place a request see the citizen's contact details (a handler saw every department's callers)."""
    held = people.service.client.post(
        "/open311/v2/requests.json",
        data={
            "service_code": "06010",
            "address_string": "淮河路 12 号门口",
            "description": "建筑垃圾",
            "phone": "13800138000",
            "first_name": "小明",
        },
        headers=people.service.auth("report"),
    )
    assert held.status_code in (200, 201), held.text
    token = held.json()[0]["token"]
    for who in ("sani", "chief", "insp", "boss"):  # they read the words, not who wrote them
        [seen] = people.call(who, "GET", "/v1/citizen-requests").json()
        assert seen["fields"]["description"] == "建筑垃圾" and "contact" not in seen["fields"], (who, seen)
    where = {"lat": 34.72355, "lon": 113.63091}
    for who in ("sani", "chief", "insp", "boss"):
        refused = people.call(who, "POST", f"/v1/citizen-requests/{token}/place", json=where)
        assert refused.status_code == 403, (who, refused.text)
        if who != "boss":  # the leader lacks cases:write altogether
            assert PEOPLE[who][0] in refused.json()["detail"], refused.text
    waiting = people.call("op", "GET", "/v1/citizen-requests").json()
    assert [w["token"] for w in waiting] == [token]  # nothing placed by the refusals
    assert waiting[0]["fields"]["contact"] == {"phone": "13800138000", "first_name": "小明"}  # to call back
    placed = people.call("op", "POST", f"/v1/citizen-requests/{token}/place", json=where)
    assert placed.status_code == 200 and placed.json()["placed_by"] == PEOPLE["op"][2], placed.text


def test_the_last_admin_who_can_sign_in_is_not_disabled(people: People) -> None:
    """Without an admin nobody can manage people in the console: the last one is kept (409)."""
    last = people.call("root", "DELETE", "/v1/users/root")
    assert last.status_code == 409 and "last admin" in last.json()["detail"], last.text
    assert people.call("root", "GET", "/v1/sessions/current").status_code == 200  # still signed in
    made = people.call(
        "root", "POST", "/v1/users", json={"username": "root2", "password": PASSWORD, "role": "admin"}
    )
    assert made.status_code == 201, made.text
    assert people.call("root", "DELETE", "/v1/users/root").status_code == 200
