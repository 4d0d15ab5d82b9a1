"""The case domain's configuration, loaded once per process: what intake, workflow and stats share.

The service, the `stats` mode and tests build one `Domain` from Settings so that every path uses
the same taxonomy, calendar, grids, routing rules, stage limits and score weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from serve.cases.deadlines import deadline
from serve.cases.errors import InvalidInput
from serve.cases.findings import CaseRules, load_case_rules
from serve.cases.routing import Routing, load_routing
from serve.cases.settings import Settings
from serve.cases.stats import load_score_weights
from serve.cases.workflow import StageLimits, load_stage_limits
from vision.core.taxonomy import Deadline


@dataclass(frozen=True)
class Domain:
    rules: CaseRules  # taxonomy, calendar, grids, duplicate rule, case number prefix
    routing: Routing
    stage_limits: StageLimits
    score_weights: dict[str, float]

    def deadline_from(self, event: str, start: datetime) -> datetime:
        """Disposal deadline of `event` counted from `start` (dispatch) on the working calendar."""
        return deadline(start, self.rules.taxonomy.events[event].deadline, self.rules.calendar)

    def extend_deadline(self, event: str, current: datetime, amount: float) -> datetime:
        """`current` moved by `amount` in the unit of the event's own limit (working hours, days ...)."""
        unit = self.rules.taxonomy.events[event].deadline.unit
        return deadline(current, Deadline(amount, unit), self.rules.calendar)

    def unit_of(self, event: str) -> str:
        return self.rules.taxonomy.events[event].deadline.unit

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
    )
