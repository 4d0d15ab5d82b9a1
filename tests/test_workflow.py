"""The case state machine as a table: what each action does, what is refused, and the flow-log entry
each step writes (time used, overdue against stage limits and the deadline)."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from serve.cases.domain import Domain, load_domain
from serve.cases.errors import InvalidInput, InvalidTransition, MissingField
from serve.cases.orm import Case, FlowEntry
from serve.cases.settings import Settings
from serve.cases.workflow import (
    INITIAL_STATE,
    OPEN_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Action,
    Command,
    StageLimits,
    State,
    allowed_actions,
    apply,
    next_state,
)

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2025, 9, 30, 10, 30, tzinfo=TZ)  # Tuesday before the National Day holiday


@pytest.fixture(scope="module")
def domain() -> Domain:
    return load_domain(Settings())


@pytest.mark.parametrize(
    ("state", "action", "after"),
    [
        ("reported", "confirm", "verified"),
        ("reported", "correct", "verified"),
        ("reported", "reject", "not_filed"),
        ("verified", "file", "filed"),
        ("filed", "dispatch", "dispatched"),
        ("dispatched", "send_back", "filed"),
        ("dispatched", "start", "handling"),
        ("handling", "handle", "handled"),
        ("handled", "check_fail", "handling"),
        ("handled", "check_pass", "check_passed"),
        ("check_passed", "close", "closed"),
        ("handling", "suspend", "suspended"),
        ("dispatched", "suspend", "suspended"),
        ("suspended", "resume", "handling"),  # or dispatched: test_a_case_resumes_where_it_was_suspended
        ("handling", "extend", "handling"),
        ("filed", "cancel", "cancelled"),
        ("handled", "force_close", "force_closed"),
    ],
)
def test_transition_table(state: str, action: str, after: str) -> None:
    assert next_state(state, action) == after


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("reported", "file"),  # a finding must be verified first
        ("verified", "dispatch"),
        ("filed", "handle"),
        ("handling", "close"),  # no closing without a passed check
        ("handled", "close"),
        ("check_passed", "check_fail"),
        ("closed", "confirm"),
        ("closed", "force_close"),
        ("reported", "fly"),
        ("nowhere", "confirm"),
    ],
)
def test_refused_transitions_name_the_allowed_ones(state: str, action: str) -> None:
    with pytest.raises(InvalidTransition) as refused:
        next_state(state, action)
    assert refused.value.status == 409
    assert refused.value.extra["allowed_actions"] == [a.value for a in allowed_actions(state)]


def test_every_state_is_reachable_and_only_final_states_are_dead_ends() -> None:
    seen, todo = {INITIAL_STATE}, deque([INITIAL_STATE])
    while todo:
        state = todo.popleft()
        for (source, _), target in TRANSITIONS.items():
            if source == state and target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(State)
    assert {s for s in State if not allowed_actions(s)} == set(TERMINAL_STATES)
    assert set(OPEN_STATES) | set(TERMINAL_STATES) == set(State)


def new_case(*, ai: bool = True, event: str = "exposed_garbage") -> Case:
    where = {"lat": 34.7235, "lon": 113.6265, "filed_at": T0, "first_seen_at": T0, "last_seen_at": T0}
    case = Case(number="SO202509300001", source="patrol_photo", state="reported", **where)
    for name, value in load_domain(Settings()).event_fields(event).items():
        setattr(case, name, value)
    case.ai_review = "pending" if ai else None
    case.flow = [FlowEntry(action="report", to_state="reported", operator="scan", at=T0, overdue=False)]
    return case


def step(case: Case, domain: Domain, action: str, minutes: float, **fields: object) -> FlowEntry:
    at = case.flow[-1].at + timedelta(minutes=minutes)
    return apply(
        case,
        Command(action=Action(action), operator="王网格员", at=at, **fields),  # type: ignore[arg-type]
        limits=domain.stage_limits,
        deadline_from=domain.deadline_from,
        extend_deadline=domain.extend_deadline,
        event_fields=domain.event_fields,
    )


def test_flow_entries_time_used_and_overdue(domain: Domain) -> None:
    case = new_case()
    confirm = step(case, domain, "confirm", 29)
    assert (confirm.from_state, confirm.to_state, confirm.seconds_used, confirm.overdue) == (
        "reported",
        "verified",
        29 * 60,
        False,
    )
    assert case.ai_review == "confirmed"
    assert step(case, domain, "file", 16).overdue is True  # filing has 15 minutes
    dispatch = step(case, domain, "dispatch", 5, department="二七区环境卫生服务中心")
    assert dispatch.at == datetime(2025, 9, 30, 11, 20, tzinfo=TZ) and dispatch.overdue is False
    # 4 working hours from 11:20: 40 min before lunch, 3 h 20 min after it
    assert case.deadline_at == datetime(2025, 9, 30, 17, 20, tzinfo=TZ)
    assert case.department == "二七区环境卫生服务中心"
    step(case, domain, "start", 60)
    handle = step(case, domain, "handle", 5 * 60 - 1, evidence_id=1)  # 17:19, a minute early
    assert handle.overdue is False and case.state == "handled"
    step(case, domain, "check_fail", 40, note="未清理干净")  # checking has 30 minutes
    assert case.flow[-1].overdue is True and case.state == "handling"
    extend = step(case, domain, "extend", 1, extend_by=1)
    # one working hour more: 17:20-18:00, holidays 10-01..10-08, then 08:00-08:20 on 10-09
    assert case.deadline_at == datetime(2025, 10, 9, 8, 20, tzinfo=TZ)
    assert (extend.from_state, extend.to_state) == ("handling", "handling")
    late = step(case, domain, "handle", 9 * 24 * 60, evidence_id=2)
    assert late.overdue is True and late.seconds_used == 9 * 24 * 3600
    step(case, domain, "check_pass", 10)
    close = step(case, domain, "close", 10)
    assert case.state == "closed" and case.closed_at == close.at and close.overdue is True
    expected = "report confirm file dispatch start handle check_fail extend handle check_pass close"
    assert [f.action for f in case.flow] == expected.split()
    assert {f.operator for f in case.flow[1:]} == {"王网格员"}


@pytest.mark.parametrize(("started", "resumed_in"), [(False, "dispatched"), (True, "handling")])
def test_a_case_resumes_where_it_was_suspended(domain: Domain, started: bool, resumed_in: str) -> None:
    """挂账 before anyone went on site: resumed, the case is dispatched again (not "handling" with
    nobody there), and its 双十 on-site clock stood still with the disposal clock: a start 5 minutes
    after resuming is judged as 5 minutes after the suspension, on time."""
    case = new_case(event="street_vending")

    def take(action: str, minutes: float, **fields: object) -> FlowEntry:
        at = case.flow[-1].at + timedelta(minutes=minutes)
        domain.move(case, Command(action=Action(action), operator="王网格员", at=at, **fields))  # type: ignore[arg-type]
        return case.flow[-1]

    take("confirm", 1)
    take("file", 1)
    on_site = case.on_site_due_at
    take("dispatch", 2, department="二七区环境卫生服务中心")
    if started:
        take("start", 3)
    take("suspend", 1, note="等待联合执法")
    take("resume", 120)
    assert case.state == resumed_in
    if not started:
        assert case.on_site_due_at == on_site + timedelta(minutes=120)
        start = take("start", 5)  # 8 of its 10 minutes used, two hours after filing
        assert (start.to_state, start.overdue) == ("handling", False)
    else:
        assert case.on_site_due_at == on_site  # judged already, at the start


@pytest.mark.parametrize(
    ("action", "fields", "error"),
    [
        ("reject", {}, MissingField),
        ("correct", {}, MissingField),
        ("correct", {"event": "flying_saucer"}, InvalidInput),
        ("cancel", {}, MissingField),
        ("force_close", {}, MissingField),
        ("file", {}, InvalidTransition),
    ],
)
def test_nothing_changes_when_a_step_is_refused(
    domain: Domain, action: str, fields: dict, error: type
) -> None:
    case = new_case()
    with pytest.raises(error):
        step(case, domain, action, 5, **fields)
    assert (case.state, case.ai_review, case.event, len(case.flow)) == (
        "reported",
        "pending",
        "exposed_garbage",
        1,
    )


def test_a_step_cannot_happen_before_the_last_one(domain: Domain) -> None:
    case = new_case()
    with pytest.raises(InvalidTransition, match="before the case's last step"):
        step(case, domain, "confirm", -1)
    assert case.state == "reported"


def test_correct_changes_the_event_and_a_citizen_report_has_no_ai_review(domain: Domain) -> None:
    case = new_case()
    step(case, domain, "correct", 3, event="illegal_poster")
    assert (case.event, case.cjt214, case.gbt47678, case.major, case.ai_review) == (
        "illegal_poster",
        "0202",
        "07003",
        "02",
        "corrected",
    )
    citizen = new_case(ai=False)
    step(citizen, domain, "confirm", 3)
    assert citizen.ai_review is None and citizen.state == "verified"


@pytest.mark.parametrize(
    ("clock", "reported", "confirmed", "overdue"),
    [
        # 17:55 Monday to 08:10 Tuesday: 14 h 15 min on the clock, 15 working minutes (5 + 10)
        ("continuous", (22, 17, 55), (23, 8, 10), True),
        ("working", (22, 17, 55), (23, 8, 10), False),
        ("working", (22, 17, 55), (23, 8, 30), True),  # 35 working minutes
        # 11:50 to 14:15 over lunch: 25 working minutes, 145 on the clock
        ("working", (22, 11, 50), (22, 14, 15), False),
        ("continuous", (22, 11, 50), (22, 14, 15), True),
        # Tuesday 30 September 17:50 to Thursday 9 October 08:10, over the National Day holiday
        ("working", (30, 17, 50), (39, 8, 10), False),
    ],
)
def test_a_desk_that_keeps_office_hours_counts_its_minutes_in_working_time(
    domain: Domain,
    clock: str,
    reported: tuple[int, int, int],
    confirmed: tuple[int, int, int],
    overdue: bool,
) -> None:
    """workflow.yaml `stage_clock: working`: the verify desk (30 min) is not late for a report that
    came in at the end of the day and was verified first thing the next working morning."""
    counted = replace(domain, stage_limits=StageLimits(domain.stage_limits.minutes, clock))  # type: ignore[arg-type]

    def at(day: int, hour: int, minute: int) -> datetime:
        return datetime(2025, 9, 1, hour, minute, tzinfo=TZ) + timedelta(days=day - 1)

    case = new_case()
    case.flow[0].at = at(*reported)
    counted.move(case, Command(action=Action.CONFIRM, operator="王网格员", at=at(*confirmed)))
    assert case.flow[-1].overdue is overdue
    assert case.flow[-1].seconds_used == (at(*confirmed) - at(*reported)).total_seconds()  # the clock's


def test_stage_limits_only_judge_their_own_stages() -> None:
    limits = StageLimits({"verify": 30.0, "check": 30.0})
    assert limits.late(Action.CONFIRM, 31 * 60) and not limits.late(Action.CONFIRM, 30 * 60)
    assert not limits.late(Action.FILE, 10 * 3600)  # no limit configured for filing here
    assert not limits.late(Action.START, 10 * 3600)
