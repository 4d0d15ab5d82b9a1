"""The case domain's configuration, loaded once per process: what intake, workflow and stats share.

The service, the `stats` mode and tests build one `Domain` from Settings so that every path uses
the same taxonomy, calendar, grids, routing rules, stage limits and score weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from serve.cases.deadlines import (
    Coverage,
    coverage,
    deadline,
    on_site_due,
    restarts_at_dispatch,
    resumed_deadline,
    working_seconds_between,
)
from serve.cases.errors import InvalidInput
from serve.cases.findings import CaseRules, load_case_rules
from serve.cases.orm import Case
from serve.cases.routing import Routing, load_routing
from serve.cases.settings import Settings
from serve.cases.stats import load_score_weights
from serve.cases.workflow import Command, StageLimits, apply, load_stage_limits
from vision.core.taxonomy import Deadline, Event

LONGEST_HOLIDAY_DAYS = 9  # the Spring Festival or National Day week with its weekends (2026: 9 days)


@dataclass(frozen=True)
class Domain:
    rules: CaseRules  # taxonomy, calendar, grids, duplicate rule, case number prefix
    routing: Routing
    stage_limits: StageLimits
    score_weights: dict[str, float]
    max_extend_days: float = 30.0  # the most one `extend` may add, as days in the class's own unit

    def move(self, case: Case, command: Command) -> None:
        """One workflow step (serve/cases/workflow.py) with this domain's limits and calendar."""
        apply(
            case,
            command,
            limits=self.stage_limits,
            deadline_from=self.deadline_from,
            extend_deadline=self.extend_deadline,
            event_fields=self.event_fields,
            on_site_from=self.on_site_from,
            restarts_at_dispatch=self.restarts_at_dispatch,
            resume_deadline=self.resume_deadline,
            stage_seconds=self.stage_seconds,
            local_tz=self.rules.calendar.timezone,
        )

    def stage_seconds(self, start: datetime, end: datetime) -> float:
        """The time a desk took for its step, as its limits count it (workflow.yaml `stage_clock`)."""
        if self.stage_limits.clock == "working":
            return working_seconds_between(start, end, self.rules.calendar)
        return (end - start).total_seconds()

    def deadline_from(self, event: str, start: datetime) -> datetime:
        """Disposal deadline of `event` counted from `start` (dispatch) on the working calendar."""
        return deadline(start, self.known_event(event).deadline, self.rules.calendar)

    def resume_deadline(
        self, event: str, due: datetime, suspended_at: datetime, resumed_at: datetime
    ) -> datetime:
        """`due` of a case of `event` resumed after a suspension: moved on by the time suspended."""
        return resumed_deadline(due, suspended_at, resumed_at, self.unit_of(event), self.rules.calendar)

    def extend_deadline(self, event: str, current: datetime, amount: float) -> datetime:
        """`current` moved by `amount` in the unit of the event's own limit (working hours, days ...).

        At most `max_extend_days` in that unit (a 1e7 working-hour extension took seconds of CPU to
        count and put the deadline in the year 7345): more is InvalidInput naming the maximum.
        """
        unit = self.known_event(event).deadline.unit
        most = self.max_extension(unit)
        if not 0 < amount <= most:
            raise InvalidInput(
                "extend_by",
                f"{amount:g} {unit}: give more than 0 and at most {most:g} {unit} "
                f"({self.max_extend_days:g} days, STREETORDER_MAX_EXTEND_DAYS)",
            )
        return deadline(current, Deadline(amount, unit), self.rules.calendar)

    def max_extension(self, unit: str) -> float:
        """`max_extend_days` in a limit's unit: hours of a day, working hours of a working day, days."""
        per_day = {
            "minutes": 1440.0,
            "hours": 24.0,
            "working_hours": self.rules.calendar.seconds_per_day / 3600,
        }
        return self.max_extend_days * per_day.get(unit, 1.0)

    def deadline_reach(self) -> timedelta:
        """How far after its start a deadline may fall: the longest limit plus one longest extension,
        working time read as calendar time (7 days for 5 working days) plus the longest holiday."""
        working_day_h = self.rules.calendar.seconds_per_day / 3600

        def natural_days(amount: float, unit: str) -> float:
            working_days = {"working_hours": amount / working_day_h, "working_days": amount}.get(unit)
            if working_days is not None:
                return working_days * 7 / 5
            return amount / {"minutes": 1440, "hours": 24}.get(unit, 1)

        reach = max(
            natural_days(e.deadline.amount, e.deadline.unit)
            + natural_days(self.max_extension(e.deadline.unit), e.deadline.unit)
            for e in self.rules.taxonomy.events.values()
        )
        return timedelta(days=reach + LONGEST_HOLIDAY_DAYS)

    def calendar_coverage(self, today: date) -> Coverage:
        """Whether configs/calendar.yaml lists the holidays of every day a deadline set today may reach."""
        return coverage(self.rules.calendar, today, self.deadline_reach())

    def restarts_at_dispatch(self, event: str) -> bool:
        """A continuous-minute clock (双十) runs from filing; dispatch restarts the others."""
        return restarts_at_dispatch(self.unit_of(event))

    def on_site_from(self, event: str, start: datetime) -> datetime | None:
        """When someone must be on site for a case of `event` filed at `start` (None: no such limit)."""
        return on_site_due(start, self.known_event(event).on_site_minutes, self.rules.calendar)

    def unit_of(self, event: str) -> str:
        """The unit a case's clock is measured in; a class since removed from the taxonomy (its old
        cases stay) is measured in continuous hours, so the figures still come out (they were a 500)."""
        known = self.rules.taxonomy.events.get(event)
        return known.deadline.unit if known is not None else "hours"

    def known_event(self, event: str) -> Event:
        """The event of the taxonomy a new deadline is set by: a case of a class since removed from
        configs/taxonomy.yaml has none until a person corrects its class (InvalidInput, not a 500)."""
        known = self.rules.taxonomy.events.get(event)
        if known is None:
            raise InvalidInput(
                "event",
                f"'{event}' is no longer an event of the taxonomy (configs/taxonomy.yaml): correct the "
                f"case's class to one of {', '.join(self.rules.taxonomy.events)} first",
            )
        return known

    def event_fields(self, event: str) -> dict[str, Any]:
        """The case columns that follow from an event key (used when a person corrects the class)."""
        known = self.rules.taxonomy.events.get(event)
        if known is None:
            raise InvalidInput("event", f"'{event}' is not one of {', '.join(self.rules.taxonomy.events)}")
        return {
            "event": known.key,
            "record_type": known.record_type,
            "major": known.major,
            "cjt214": known.cjt214,
            "gbt47678": known.gbt47678,
        }


def load_domain(settings: Settings) -> Domain:
    rules = load_case_rules(settings)
    configs = settings.configs_dir
    return Domain(
        rules=rules,
        routing=load_routing(configs / "routing.yaml", rules.taxonomy),
        stage_limits=load_stage_limits(configs / "workflow.yaml"),
        score_weights=load_score_weights(configs / "stats.yaml"),
        max_extend_days=settings.max_extend_days,
    )
