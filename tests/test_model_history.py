"""The model history table's verdicts (vision/modelops/history.py): a promotion a rollback undid is
marked, a model made current again is not, and rolling forward to a later model undoes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from vision.modelops.history import rolled_back


def step(action: str, model: str, previous: str | None = None) -> dict[str, Any]:
    return {"action": action, "model": model, "previous": previous}


@pytest.mark.parametrize(
    ("history", "undone"),
    [
        ([step("initial", "a"), step("promote", "b", "a")], set()),
        ([step("initial", "a"), step("promote", "b", "a"), step("rollback", "a", "b")], {"b"}),
        ([step("initial", "a"), step("refuse", "b", "a"), step("promote", "c", "a")], set()),
        # undone, then promoted again: current again, nothing undone
        (
            [
                step("initial", "a"),
                step("promote", "b", "a"),
                step("rollback", "a", "b"),
                step("force", "b", "a"),
            ],
            set(),
        ),
        # a promotion judged by mistake undone, the rollback target moved back one and forward again
        # (2026-12-06: street-v29 after street-v28, street-v27 before them)
        (
            [
                step("promote", "v27", "v25"),
                step("promote", "v28", "v27"),
                step("promote", "v29", "v28"),
                step("rollback", "v28", "v29"),
                step("rollback", "v27", "v28"),
                step("rollback", "v28", "v27"),
            ],
            {"v29"},
        ),
        # a rollback two models back undoes only the one it left
        (
            [
                step("initial", "a"),
                step("promote", "b", "a"),
                step("promote", "c", "b"),
                step("rollback", "a", "c"),
            ],
            {"c"},
        ),
    ],
)
def test_rolled_back_names_the_promotions_undone(history: list[dict[str, Any]], undone: set[str]) -> None:
    assert rolled_back(history) == undone
