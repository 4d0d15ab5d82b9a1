"""`streetorder stats`: filing, disposal and closing rates, rankings and worst spots as JSON
(serve.cases.stats)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from serve.cases.stats import (
    GROUPS,
    facts_between,
    grouped,
    layout_area,
    local_day_bounds,
    ranking,
    rates,
    ten_day_period,
    worst_spots,
)
from serve.cli.args import day, positive_int


def cli(argv: list[str]) -> int:
    """Print the metrics of a period, the 10-day ranking or the worst spots as JSON."""
    from serve.cases.db import open_database
    from serve.cases.domain import load_domain
    from serve.cases.settings import get_settings

    parser = argparse.ArgumentParser(prog="streetorder stats", description=cli.__doc__)
    parser.add_argument("--db", help="database URL (default: STREETORDER_DB_URL or settings)")
    parser.add_argument("--since", type=day, help="first day (bureau time), inclusive")
    parser.add_argument("--until", type=day, help="last day (bureau time), exclusive")
    parser.add_argument("--group-by", choices=GROUPS, help="one row per grid, street, department or event")
    parser.add_argument("--ranking", type=day, metavar="DAY", help="10-day street ranking of DAY")
    parser.add_argument(
        "--worst", type=positive_int, metavar="N", help="the N grids with the most open cases per km²"
    )
    args = parser.parse_args(argv)
    if args.since and args.until and args.until <= args.since:
        parser.error(f"--until {args.until} must come after --since {args.since}")
    settings = get_settings()
    domain = load_domain(settings)
    calendar, grids = domain.rules.calendar, domain.rules.grids
    factory = open_database(args.db or settings.db_url, create=False)
    since: datetime | None
    until: datetime | None
    with factory() as session:
        if args.worst:
            out: Any = worst_spots(session, grids, args.worst, domain.routing)
        else:
            if args.ranking:
                start, end, label = ten_day_period(args.ranking)
                since, until = local_day_bounds(start, end, calendar)
                # the label alone, "2026-11-2", read as 2 November: its bounds too, as the API gives them
                period = {"period": label, "since": since.isoformat(), "until": until.isoformat()}
            else:
                since = local_day_bounds(args.since, args.since, calendar)[0] if args.since else None
                until = local_day_bounds(args.until, args.until, calendar)[0] if args.until else None
            facts = list(facts_between(session, since, until, calendar, domain.unit_of))
            if args.ranking:
                out = {**period, "streets": ranking(facts, grids, domain.score_weights)}
            else:
                out = {"total": rates(facts, area_km2=layout_area(grids), weights=domain.score_weights)}
                if args.group_by:
                    out["groups"] = grouped(facts, args.group_by, grids, domain.score_weights)
    json.dump(out, sys.stdout, ensure_ascii=False, indent=2, default=str)
    print()
    return 0
