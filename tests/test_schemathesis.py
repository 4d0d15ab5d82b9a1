"""Schemathesis against the service's own OpenAPI document, over real HTTP (uvicorn on 127.0.0.1,
SQLite, the real model): requests generated from every operation's schema, with an admin key so
that each reaches its handler, must never get a server error (503 only with Retry-After: the
inference gate shedding load). EXAMPLES per operation keeps the run near a minute.

Besides what the schema allows, times and days span years 1 to 9999 at any offset, and one field
of a body or query may be replaced by an extreme (NaN, Infinity, an integer beyond 64 bits, 1e308,
a time at the end of year 9999): each of these answered 500 once (issue 31)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serve.cli.bench_load import LiveService, running_service

EXAMPLES = 25
seen: dict[str, int] = {}
EXTREMES: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    2**70,
    -(2**64),
    1e308,
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "2999-06-01T09:00:00+08:00",
    "9999-12-31",
    "0001-01-01",
]
any_time = st.builds(
    lambda naive, minutes: naive.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.integers(-14 * 60, 14 * 60),
)
schemathesis.openapi.format("date-time", any_time)
schemathesis.openapi.format("date", st.dates().map(lambda day: day.isoformat()))


def with_extreme(case: Any, extreme: Any, which: int) -> None:
    """Replace one field of the body (else of the query) by `extreme`; None leaves the case alone."""
    target = case.body if isinstance(case.body, dict) and case.body else case.query
    if extreme is None or not target:
        return
    target[sorted(target)[which % len(target)]] = extreme


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    with running_service(f"sqlite:///{workdir / 'api.db'}", workdir) as service:
        yield service


def send(case: Any, live: LiveService) -> requests.Response:
    """The case over HTTP; a JSON body with NaN or Infinity written as Python's json writes them
    (requests refuses to), since that is what a careless client sends."""
    kwargs = case.as_transport_kwargs(base_url=live.base, headers=live.auth("admin"))
    if "json" in kwargs:
        kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
        kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
    return requests.request(**kwargs, timeout=60)


def test_no_operation_answers_with_a_server_error(live: LiveService) -> None:
    api = schemathesis.openapi.from_url(f"{live.base}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 25
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        @given(operation.as_strategy(), st.sampled_from([None, None, *EXTREMES]), st.integers(0, 7))
        def call(case: Any, extreme: Any, which: int) -> None:
            with_extreme(case, extreme, which)
            response = send(case, live)
            seen[case.operation.label] = seen.get(case.operation.label, 0) + 1
            retry = "retry-after" in {k.lower() for k in response.headers}
            if response.status_code >= 500 and not (response.status_code == 503 and retry):
                failures.append(f"{case.operation.label}: {response.status_code} {response.text[:300]}")

        call()
        assert live.process.poll() is None, f"the service died on {operation.label}"
    assert not failures, "\n".join(failures)
    assert sum(seen.values()) >= len(operations) * 2
    print(f"{sum(seen.values())} generated requests over {len(operations)} operations")
