"""Hot reload: a running service follows the registry's current model while requests keep coming.

Two real models with different weights files, made by the tests: `tiny` (64 px) and `tiny-96` (the
same training run exported for 96 px input). Clients post to /v1/detect from several threads while the
registry switches between them; every response must succeed and name the model that made it.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import Service

from serve.api.reload import FollowingDetector, ModelReloader
from vision.modelops.promote import Registry, rollback

AT = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cases.db'}"


@pytest.fixture
def models(tiny_models: Path) -> Path:
    return tiny_models


@pytest.fixture
def service_overrides(models: Path) -> dict[str, object]:
    return {"model": str(models / "registry.yaml"), "model_reload_s": 0.05, "inference_queue": 64}


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_promotion_swaps_the_model_under_load_and_no_request_fails(
    service: Service, models: Path, jpeg: Callable[..., bytes]
) -> None:
    photo = jpeg(320, 240, 3)
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            response = service.client.post(
                "/v1/detect", files={"file": ("a.jpg", photo, "image/jpeg")}, headers=service.auth("detect")
            )
            results.append((response.status_code, response.json().get("model_version")))

    versions = {name: f"{name}@" for name in ("tiny", "tiny-96")}
    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        registry = Registry(models)
        wait_for(lambda: len(results) >= 8)
        rollback(registry=registry, at=AT, to="tiny-96", reason="test: switch under load")
        wait_for(lambda: any(v and v.startswith(versions["tiny-96"]) for _, v in results[-4:]))
        switched = len(results)
        rollback(registry=registry, at=AT, to="tiny", reason="test: and back")
        wait_for(lambda: len(results) >= switched + 8 and all(v.startswith("tiny@") for _, v in results[-4:]))
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert {status for status, _ in results} == {200}, [r for r in results if r[0] != 200][:3]
    seen = [v for _, v in results]
    assert any(v.startswith(versions["tiny-96"]) for v in seen) and seen[-1].startswith("tiny@")
    assert service.client.get("/readyz").json()["model_version"] == seen[-1]
    metrics = service.client.get("/metrics", headers=service.auth("cases:read")).text
    loaded = [line for line in metrics.splitlines() if line.startswith("streetorder_model_info{")]
    assert loaded == [f'streetorder_model_info{{version="{seen[-1]}"}} 1.0']  # the old version is gone


def test_a_promoted_model_that_does_not_load_leaves_the_old_one_serving(
    service: Service, models: Path, jpeg: Callable[..., bytes]
) -> None:
    state = service.client.app.state.service  # type: ignore[attr-defined]
    before = state.detector.version
    broken = models / "tiny-broken"
    broken.mkdir()
    shutil.copy(models / "tiny" / "card.yaml", broken / "card.yaml")
    (broken / "model.onnx").write_bytes(b"not an onnx file")
    reloader = ModelReloader(state, 60)  # its own look, beside the service's watcher
    Registry(models).record(
        {"at": AT.isoformat(), "action": "force", "model": broken.name}, current=broken.name
    )
    assert reloader.check() is False
    response = service.client.post(
        "/v1/detect", files={"file": ("a.jpg", jpeg(), "image/jpeg")}, headers=service.auth("detect")
    )
    assert response.status_code == 200 and response.json()["model_version"] == before


def test_a_following_detector_reports_the_model_that_analysed_the_frame(
    service: Service, models: Path
) -> None:
    state = service.client.app.state.service  # type: ignore[attr-defined]
    follower = FollowingDetector(state)
    frame = np.zeros((240, 320, 3), np.uint8)
    follower(frame)
    assert follower.version == state.detector.version and follower.version.startswith("tiny@")
    assert follower.input_size == 64
    rollback(registry=Registry(models), at=AT, to="tiny-96")
    wait_for(lambda: state.detector.version.startswith("tiny-96@"))
    seen: list[str] = []
    thread = threading.Thread(target=lambda: (follower(frame), seen.append(follower.version)))
    thread.start()
    thread.join()
    assert seen[0].startswith("tiny-96@") and follower.input_size == state.detector.input_size == 96
