"""`streetorder calendar check`: does the working calendar list the holidays of every day a deadline
set today may reach? Exit 0 when it does, 1 when a year is missing (with what to add), 2 on usage."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime

from serve.cli.args import day


def cli(argv: list[str]) -> int:
    """Check configs/calendar.yaml's coverage: the years it lists, and how far deadlines reach."""
    from serve.cases.domain import load_domain
    from serve.cases.settings import get_settings

    parser = argparse.ArgumentParser(prog="streetorder calendar", description=cli.__doc__)
    parser.add_argument("action", choices=["check"], help="check the coverage")
    parser.add_argument(
        "--today",
        type=day,
        help="the day deadlines are set from (default: today, bureau time)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    domain = load_domain(settings)
    calendar = domain.rules.calendar
    today = args.today or datetime.now(UTC).astimezone(calendar.timezone).date()
    holidays = Counter(day.year for day in calendar.holidays)
    make_up = Counter(day.year for day in calendar.make_up_workdays)
    for year in sorted(holidays | make_up):
        print(f"{year}: {holidays[year]} holiday(s), {make_up[year]} make-up working day(s)")
    covered = domain.calendar_coverage(today)
    print(
        f"deadlines set on {today} may run to {covered.reach_until} (longest limit, one extension, a holiday)"
    )
    source = str(settings.configs_dir / "calendar.yaml")
    if warning := covered.warning(source):
        print(f"streetorder calendar: {warning}")
        return 1
    print(f"covered: holidays are listed up to {covered.last_year}")
    return 0
