"""The case state machine (案卷流转) as one transition table, plus the flow-log entry of each step.

The table is pure data so that the API, the web console and the camera verifier all agree on
what may happen next. Time is always passed in (`at`): a rule never reads the clock, so a step
recorded late (a field app syncing, a test replaying a day) is judged by when it happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, field_validator

from serve.cases.enums import Action, AiReview, State
from serve.cases.errors import CaseNotOpen, InvalidTransition, MissingField
from serve.cases.orm import Case, FlowEntry
from serve.cases.times import local_iso
from vision.core.config import ConfigError, ConfigModel, load_config_file

S, A = State, Action
OPEN_STATES = (
    S.REPORTED,
    S.VERIFIED,
    S.FILED,
    S.DISPATCHED,
    S.HANDLING,
    S.HANDLED,
    S.CHECK_PASSED,
    S.SUSPENDED,
)
TERMINAL_STATES = (S.NOT_FILED, S.CLOSED, S.CANCELLED, S.FORCE_CLOSED)
INITIAL_STATE = S.REPORTED
# Open cases a person has filed (立案): only these count as problems, run a disposal clock and can be
# overdue; a report awaiting review (reported, verified) is the reviewer's business, not the street's.
FILED_OPEN_STATES = (S.FILED, S.DISPATCHED, S.HANDLING, S.HANDLED, S.CHECK_PASSED, S.SUSPENDED)
# Filed open cases whose disposal clock runs and can be overdue: a suspended one (挂账) stops it.
CLOCK_RUNNING_STATES = tuple(state for state in FILED_OPEN_STATES if state is not S.SUSPENDED)
AUTO_FILER = "auto-filing"  # operator of the `file` step of a case filed by configs/workflow.yaml `auto_file`

# (state, action) -> next state. Anything not listed is refused with the allowed actions named.
TRANSITIONS: dict[tuple[State, Action], State] = {
    (S.REPORTED, A.CONFIRM): S.VERIFIED,
    (S.REPORTED, A.CORRECT): S.VERIFIED,
    (S.REPORTED, A.REJECT): S.NOT_FILED,
    (S.VERIFIED, A.FILE): S.FILED,
    (S.VERIFIED, A.REJECT): S.NOT_FILED,
    (S.FILED, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.SEND_BACK): S.FILED,
    (S.DISPATCHED, A.START): S.HANDLING,
    (S.HANDLING, A.SEND_BACK): S.FILED,
    (S.HANDLING, A.HANDLE): S.HANDLED,
    (S.HANDLED, A.CHECK_PASS): S.CHECK_PASSED,
    (S.HANDLED, A.CHECK_FAIL): S.HANDLING,
    (S.CHECK_PASSED, A.CLOSE): S.CLOSED,
    (S.DISPATCHED, A.SUSPEND): S.SUSPENDED,
    (S.HANDLING, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.RESUME): S.HANDLING,  # or dispatched: back where it was suspended (`suspended_from`)
    (S.DISPATCHED, A.EXTEND): S.DISPATCHED,
    (S.HANDLING, A.EXTEND): S.HANDLING,
    (S.SUSPENDED, A.EXTEND): S.SUSPENDED,
    **{
        (state, A.CANCEL): S.CANCELLED
        for state in (S.REPORTED, S.VERIFIED, S.FILED, S.DISPATCHED, S.HANDLING, S.SUSPENDED)
    },
    **{(state, A.FORCE_CLOSE): S.FORCE_CLOSED for state in OPEN_STATES},
}

# What an action needs besides the state; checked before anything changes.
REQUIRED: dict[Action, tuple[str, ...]] = {
    A.CORRECT: ("event",),
    A.REJECT: ("note",),
    A.DISPATCH: ("department",),
    A.HANDLE: ("evidence_id",),
    A.CHECK_FAIL: ("note",),
    A.SUSPEND: ("note",),
    A.EXTEND: ("extend_by",),
    A.CANCEL: ("note",),
    A.FORCE_CLOSE: ("note",),
}

StageClock = Literal["continuous", "working"]  # how a desk's minutes are counted (workflow.yaml stage_clock)
# Which stage limit (configs/workflow.yaml, minutes) judges an action late; the rest use the deadline.
STAGE_OF: dict[Action, str] = {
    A.CONFIRM: "verify",
    A.CORRECT: "verify",
    A.REJECT: "verify",
    A.FILE: "file",
    A.DISPATCH: "dispatch",
    A.CHECK_PASS: "check",
    A.CHECK_FAIL: "check",
}
DEADLINE_ACTIONS = (A.HANDLE, A.CLOSE, A.FORCE_CLOSE)
AI_REVIEW_OF = {A.CONFIRM: AiReview.CONFIRMED, A.CORRECT: AiReview.CORRECTED, A.REJECT: AiReview.REJECTED}


def allowed_actions(state: str) -> list[Action]:
    """The actions a case in `state` accepts now, in workflow order."""
    return [action for (from_state, action) in TRANSITIONS if from_state == state]


def next_state(state: str, action: str) -> State:
    """The state after `action`, or InvalidTransition naming what is allowed instead."""
    try:
        return TRANSITIONS[(State(state), Action(action))]
    except (KeyError, ValueError):
        raise InvalidTransition(state, action, [a.value for a in allowed_actions(state)]) from None


def is_open(state: str) -> bool:
    return state in OPEN_STATES


def check_evidence_open(case: Case) -> None:
    """A case's evidence changes (added, detached, split, merged) only while it is open: every open
    state takes photos of every role, a finished one (TERMINAL_STATES) none, CaseNotOpen naming the
    state. A problem's photos (finding, near, far, reference, before) come while it stands, as
    duplicates join it until it is closed; an after-photo belongs to handling and its check, and
    also to a case nobody handled yet whose place is clear (a camera's `resolved`) or one back after
    handling (rework). Closed, force-closed, cancelled or not filed, its evidence is its record (find
    one, fix one, verify one: the verification is done)."""
    if not is_open(case.state):
        raise CaseNotOpen(case.number, case.state)


@dataclass(frozen=True)
class StageLimits:
    """Minutes each desk has for its step (accept 15, dispatch 15, verify 30, check 30 by default),
    counted on the clock (`continuous`) or in working time only (`working`: a desk that keeps office
    hours is not late for a report that came in at night)."""

    minutes: dict[str, float]
    clock: StageClock = "continuous"

    def late(self, action: Action, seconds_used: float) -> bool:
        stage = STAGE_OF.get(action)
        return stage is not None and stage in self.minutes and seconds_used > self.minutes[stage] * 60


# A desk's step takes minutes to hours: 30 days is far past any (1e9 was accepted: no step ever late).
MAX_STAGE_MINUTES = 43_200


class WorkflowFile(ConfigModel):
    """configs/workflow.yaml: minutes per desk, for the stages of STAGE_OF; classes filed without review."""

    stage_limits_minutes: dict[str, Annotated[float, Field(gt=0, le=MAX_STAGE_MINUTES)]] = {}
    stage_clock: StageClock = "continuous"
    auto_file: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}  # event key -> lowest confidence

    @field_validator("stage_limits_minutes")
    @classmethod
    def _known_stages(cls, minutes: dict[str, float]) -> dict[str, float]:
        stages = sorted(set(STAGE_OF.values()))
        if unknown := sorted(set(minutes) - set(stages)):
            raise ValueError(f"{', '.join(unknown)}: not a stage (stages: {', '.join(stages)})")
        return minutes


def load_stage_limits(path: Path) -> StageLimits:
    """`<configs_dir>/workflow.yaml` `stage_limits_minutes`; ConfigError names a bad field."""
    config = load_config_file(path, WorkflowFile)
    return StageLimits(dict(config.stage_limits_minutes), config.stage_clock)


@dataclass(frozen=True)
class AutoFiling:
    """Event classes a bureau trusts its detector with: an AI finding of one, at or above its
    confidence, is filed (立案) at once instead of waiting for a person's review."""

    min_confidence: dict[str, float]

    def files(self, event: str, confidence: float | None) -> bool:
        threshold = self.min_confidence.get(event)
        return threshold is not None and confidence is not None and confidence >= threshold


NO_AUTO_FILING = AutoFiling({})  # every AI finding waits for a person


def load_auto_filing(path: Path, events: Iterable[str]) -> AutoFiling:
    """`<configs_dir>/workflow.yaml` `auto_file`: event key -> lowest confidence filed without review;
    ConfigError names an event the taxonomy lacks."""
    auto = load_config_file(path, WorkflowFile).auto_file
    if unknown := sorted(set(auto) - set(events)):
        raise ConfigError(f"{path}: auto_file: {', '.join(unknown)}: not an event of the taxonomy")
    return AutoFiling(dict(auto))


@dataclass(frozen=True)
class Command:
    """One requested step: what, by whom, when, and the action's own fields."""

    action: Action
    operator: str
    at: datetime
    note: str | None = None
    department: str | None = None
    event: str | None = None
    evidence_id: int | None = None
    extend_by: float | None = None
    user_id: int | None = None  # the signed-in person (serve/cases/people.py); None for API keys

    def missing(self) -> list[str]:
        return [name for name in REQUIRED.get(self.action, ()) if getattr(self, name) in (None, "")]


# Deadline arithmetic is the calendar's business (serve.cases.deadlines); the workflow only asks for it.
DeadlineFrom = Callable[[str, datetime], datetime]  # (event key, start) -> disposal deadline
ExtendDeadline = Callable[[str, datetime, float], datetime]  # (event key, deadline, amount) -> later
ResumeDeadline = Callable[
    [str, datetime, datetime, datetime], datetime
]  # (event, deadline, suspended, resumed)


def apply(
    case: Case,
    command: Command,
    *,
    limits: StageLimits,
    deadline_from: DeadlineFrom,
    extend_deadline: ExtendDeadline,
    event_fields: Callable[[str], dict[str, Any]],
    on_site_from: Callable[[str, datetime], datetime | None] = lambda event, start: None,
    restarts_at_dispatch: Callable[[str], bool] = lambda event: True,
    resume_deadline: ResumeDeadline = lambda event, due, suspended_at, resumed_at: due,
    stage_seconds: Callable[[datetime, datetime], float] = lambda start, end: (end - start).total_seconds(),
    local_tz: tzinfo = UTC,
) -> FlowEntry:
    """Move `case` by `command` and append its flow-log entry; raises before changing anything.

    Filing (立案) starts the disposal clock (and the on-site clock of a 双十 class), dispatch restarts
    it from the dispatch time unless it counts continuous minutes; a case sent back (回退) leaves
    the department that returned it (its lists, its handlers' view, Open311's agency_responsible);
    rework keeps the clock running; a suspension (挂账) stops it until `resume`. A report awaiting
    review has no deadline: it counts nowhere yet. A refusal names times on the bureau's clock
    (`local_tz`), as every time the API answers.
    """
    to_state = next_state(case.state, command.action)
    if command.action is A.RESUME:
        to_state = suspended_from(case)
    if missing := command.missing():
        raise MissingField(command.action.value, missing)
    last_at = case.flow[-1].at if case.flow else case.first_seen_at
    if command.at < last_at:
        raise InvalidTransition(
            case.state,
            command.action.value,
            [a.value for a in allowed_actions(case.state)],
            detail=f"time {local_iso(command.at, local_tz)} is before the case's last step at "
            f"{local_iso(last_at, local_tz)}",
        )
    seconds_used = (command.at - last_at).total_seconds()
    if command.action in DEADLINE_ACTIONS:  # a suspended case's clock stands still since its suspension
        clock = last_suspension(case) if case.state == S.SUSPENDED else command.at
        overdue = case.deadline_at is not None and clock > case.deadline_at
    elif command.action is A.START and case.on_site_due_at is not None:  # 双十: on site in time?
        overdue = command.at > case.on_site_due_at
    else:
        overdue = limits.late(command.action, stage_seconds(last_at, command.at))

    corrected = event_fields(command.event) if command.action is A.CORRECT and command.event else {}

    if command.action in AI_REVIEW_OF and case.ai_review is not None:  # only AI findings have a review
        case.ai_review = AI_REVIEW_OF[command.action]
    for name, value in corrected.items():
        setattr(case, name, value)
    if command.action is A.FILE:
        case.deadline_at = deadline_from(case.event, command.at)
        case.on_site_due_at = on_site_from(case.event, command.at)
    if command.action is A.DISPATCH:
        case.department = command.department
        if restarts_at_dispatch(case.event) or case.deadline_at is None:
            case.deadline_at = deadline_from(case.event, command.at)
    if command.action is A.SEND_BACK:  # 回退: no department holds it until it is dispatched again
        case.department = None
    if command.action is A.RESUME and case.deadline_at is not None:
        case.deadline_at = resume_deadline(case.event, case.deadline_at, last_suspension(case), command.at)
    if command.action is A.RESUME and to_state is S.DISPATCHED and case.on_site_due_at is not None:
        case.on_site_due_at += command.at - last_suspension(case)  # nobody on site yet: 双十 stood still too
    if command.action is A.EXTEND and command.extend_by is not None:
        base = case.deadline_at or deadline_from(case.event, command.at)
        case.deadline_at = extend_deadline(case.event, base, command.extend_by)
    if to_state in (S.CLOSED, S.FORCE_CLOSED, S.CANCELLED, S.NOT_FILED):
        case.closed_at = command.at

    entry = FlowEntry(
        action=command.action.value,
        from_state=case.state,
        to_state=to_state,
        operator=command.operator,
        user_id=command.user_id,
        at=command.at,
        seconds_used=seconds_used,
        overdue=overdue,
        note=command.note,
    )
    case.state = to_state
    case.flow.append(entry)
    return entry


class Clocked(Protocol):
    """What the overdue rule reads of a case: a `Case`, or a plain row with these columns."""

    @property
    def state(self) -> str: ...
    @property
    def deadline_at(self) -> datetime | None: ...


def is_overdue(case: Clocked, as_of: datetime) -> bool:
    """Filed, still open, its clock running and past its deadline at `as_of`: a report awaiting review
    and a suspended case (挂账) are never overdue."""
    return case.state in CLOCK_RUNNING_STATES and case.deadline_at is not None and case.deadline_at < as_of


def last_suspension(case: Case) -> datetime:
    """When a suspended case (挂账) was suspended: its disposal clock has stood still since."""
    return next(e.at for e in reversed(case.flow) if e.action == A.SUSPEND)


def suspended_from(case: Case) -> State:
    """Where a suspended case resumes: the state it was suspended in. A case suspended before anyone
    started it is dispatched again, not "handling" with no one on site (and its 双十 start unjudged)."""
    return next(State(e.from_state or S.HANDLING) for e in reversed(case.flow) if e.action == A.SUSPEND)
