"""Schemathesis against the service's own OpenAPI document, over real HTTP (uvicorn on 127.0.0.1,
SQLite, the real model): requests generated from every operation's schema, with an admin key so
that each reaches its handler, must never get a server error (503 only with Retry-After: the
inference gate shedding load). EXAMPLES per operation keeps the run near a minute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from serve.cli.bench_load import LiveService, running_service

EXAMPLES = 25
seen: dict[str, int] = {}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    with running_service(f"sqlite:///{workdir / 'api.db'}", workdir) as service:
        yield service


def test_no_operation_answers_with_a_server_error(live: LiveService) -> None:
    api = schemathesis.openapi.from_url(f"{live.base}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 25
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        @given(operation.as_strategy())
        def call(case: Any) -> None:
            response = case.call(base_url=live.base, headers=live.auth("admin"), timeout=60)
            seen[case.operation.label] = seen.get(case.operation.label, 0) + 1
            retry = "retry-after" in {k.lower() for k in response.headers}
            if response.status_code >= 500 and not (response.status_code == 503 and retry):
                failures.append(f"{case.operation.label}: {response.status_code} {response.text[:300]}")

        call()
        assert live.process.poll() is None, f"the service died on {operation.label}"
    assert not failures, "\n".join(failures)
    assert sum(seen.values()) >= len(operations) * 2
    print(f"{sum(seen.values())} generated requests over {len(operations)} operations")
