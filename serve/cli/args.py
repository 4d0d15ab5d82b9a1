"""Argument types the modes share. argparse turns their errors into `error: argument --X: ...`
(exit 2) before anything runs: a negative batch or `--hours nan` is a mistake to name, not a
value to run with (silently all photos refused as bombs, a traceback at the end). Only the standard
library here: `train` runs on hosts with nothing but ultralytics, torch and PyYAML."""

from __future__ import annotations

import argparse
import math
import re
from datetime import date


def positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def count(text: str) -> int:
    """A whole number from 0 (where the mode says what 0 means: all, none, wait forever)."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number from 0, got {text}")
    return value


def share(text: str) -> float:
    """A fraction from 0 to 1 (synth-flyers --val-share 1.0 makes a val-only set to benchmark on)."""
    value = _number(text)
    if not 0 <= value <= 1:  # also false for NaN
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, got {text}")
    return value


def day(text: str) -> date:
    """A day (YYYY-MM-DD) in the years the service computes with (serve.cases.times, imported here
    only when a mode reads a day: `train` never does)."""
    from serve.cases.times import computable_day

    try:
        parsed = date.fromisoformat(text)
    except ValueError as err:  # 2026-02-30: the reason; `yesterday`: the form
        shaped = re.fullmatch(r"\d{4}-\d{2}-\d{2}", text)
        raise argparse.ArgumentTypeError(
            f"{text}: {err}" if shaped else f"expected a day YYYY-MM-DD, got {text!r}"
        ) from None
    try:
        return computable_day(parsed)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def port(text: str) -> int:
    """A TCP port to listen on (0: any free one)."""
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 65535, got {value}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def verb_db() -> argparse.ArgumentParser:
    """`--db` for the verbs of a mode that takes it before its verb (`keys`, `users`), so that
    `keys create --db URL` reads like `scan ... --db URL`: it was refused as an unknown argument
    (the database a scan had just filled took no key), and without it the key went, unsaid, into a
    new streetorder.db in the working folder that the service on the scanned database never read."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--db", default=argparse.SUPPRESS, help="database URL (also before the verb)")
    return parent
