"""Argument types the modes share. argparse turns their errors into `error: argument --X: ...`
(exit 2) before anything runs: a negative batch or `--hours nan` is a mistake to name, not a
value to run with (silently all photos refused as bombs, a traceback at the end). Only the standard
library here: `train` runs on hosts with nothing but ultralytics, torch and PyYAML."""

from __future__ import annotations

import argparse
import math


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
