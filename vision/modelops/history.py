"""The model history as one markdown table, built from models/registry.yaml and the model cards.

docs/training.md carries its output (`streetorder models table`); a test keeps the two equal, so the
table never drifts from the registry that decides which model serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vision.detect.registry import read_card
from vision.modelops.promote import CURRENT_ACTIONS, Registry, natural_order

# the holdout whose AP50 the table shows (the classes every model was judged on since street-v1)
HOLDOUT_V1 = "b61e0a2dbacff961f30c35ff2552531e8dd924a93d9311c58d7132aa476064a9"
HEADER = (
    "| model | data | input | epochs | garbage / bin / overflow AP50 | car AP50 (vehicles-in / traffic-cams) "
    "| signboard AP50 | verdict |\n|---|---|---:|---:|---|---|---:|---|\n"
)


def _scores(card: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """set -> class -> AP50 on holdout-v1, from the card's cached holdout scores (a model judged only
    on holdout-v2: those, which hold holdout-v1's sets unchanged), else its metrics."""
    holdouts: dict[str, dict[str, Any]] = card.get("holdout") or {}
    judged = holdouts.get(HOLDOUT_V1) or next(reversed(holdouts.values()), {})
    cached = judged.get("scores")
    if cached:
        return {s: {c: v.get("value") for c, v in classes.items()} for s, classes in cached.items()}
    metrics = card.get("metrics") or {}
    return {s: {c: v.get("ap50") for c, v in (m.get("classes") or {}).items()} for s, m in metrics.items()}


def _ap(scores: dict[str, dict[str, float | None]], data_set: str, name: str) -> str:
    value = scores.get(data_set, {}).get(name)
    return "–" if value is None else f"{value:.3f}"


def _data(card: dict[str, Any]) -> str:
    training = card.get("training") or {}
    if relay := training.get("relay"):
        return f"GPU relay {relay.get('name', '')}, {len(relay.get('legs') or [])} leg(s)"
    data = Path(str((training.get("settings") or {}).get("data") or ""))
    mix = data.parent.name if data.stem == "data" else data.stem  # a built mix's data.yaml: its folder
    averaged = " (averaged with its start)" if training.get("averaged_from") else ""
    return (f"`{mix}`" if mix else "") + averaged


def rolled_back(history: list[dict[str, Any]]) -> set[str]:
    """Models a rollback took the service away from, back to a model current before them, and that
    were not made current again: a promotion undone (a later roll forward is no undoing)."""
    first_current: dict[str, int] = {}
    undone: set[str] = set()
    for step, entry in enumerate(history):
        if entry.get("action") not in CURRENT_ACTIONS:
            continue
        model, left = str(entry["model"]), str(entry.get("previous"))
        if entry["action"] == "rollback" and first_current.get(model, step) < first_current.get(left, -1):
            undone.add(left)
        first_current.setdefault(model, step)
        undone.discard(model)
    return undone


def _verdict(name: str, current: str | None, decisions: dict[str, dict[str, Any]], undone: set[str]) -> str:
    entry = decisions.get(name)
    if entry is None:
        return "not judged"
    action = str(entry.get("action"))
    words = {"initial": "first shipped", "promote": "promoted", "refuse": "refused", "force": "forced"}
    verdict = words.get(action, action)
    if action == "refuse":
        verdict += f": {str(entry.get('reason', '')).rpartition('class(es): ')[2]}"
        verdict += f" on {(entry.get('holdout') or {}).get('name', 'the holdout')}"
    if name in undone:
        verdict += ", rolled back"
    return f"**{verdict}, current**" if name == current else verdict


def history_table(models_dir: Path) -> str:
    """One row per model folder with a card: what it was trained on, its key holdout scores, and what
    the registry decided (a refusal says which class failed; a promotion undone says so)."""
    registry = Registry(models_dir)
    state = registry.read()
    decisions = {str(e["model"]): e for e in state["history"] if e.get("action") != "rollback"}
    undone = rolled_back(state["history"])
    rows = []
    folders = [p.name for p in models_dir.iterdir() if (p / "card.yaml").is_file()]
    for name in sorted(folders, key=natural_order):
        card = read_card(models_dir / name)
        scores = _scores(card)
        epochs = (card.get("training") or {}).get("epochs_completed", "")
        garbage = " / ".join(_ap(scores, "garbage-cn", c) for c in ("garbage", "garbage_bin", "overflow"))
        cars = f"{_ap(scores, 'vehicles-in', 'car')} / {_ap(scores, 'traffic-cams', 'car')}"
        rows.append(
            f"| {name} | {_data(card)} | {card.get('input_size', '')} | {epochs} "
            f"| {garbage} | {cars} | {_ap(scores, 'facades-spb', 'signboard')} "
            f"| {_verdict(name, state['current'], decisions, undone)} |\n"
        )
    return HEADER + "".join(rows)
