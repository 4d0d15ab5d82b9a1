"""Weights that are not kept beside the card: fetched by url (verified by sha256) on first use, or
pruned from the tree once a git commit holds them, with rollback saying how to restore them.

A real HTTP server (http.server in a thread) serves the tiny model the tests train; git is real too.
"""

from __future__ import annotations

import functools
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv
import yaml
from configured import MODELS, TAXONOMY
from synthetic import SOURCES, draw, random_boxes, tiny_model

from serve.cli.main import main
from vision.core.files import file_sha256
from vision.detect.backends import load_detector
from vision.detect.registry import ModelError, find_model, model_version, read_card
from vision.modelops.promote import PromotionError, Registry, list_models, natural_order, prune, rollback

AT = datetime(2025, 10, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models"))


class WeightsServer:
    """Serves a folder over HTTP on 127.0.0.1 and counts the GET requests per path."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture
def server(tiny: Path, tmp_path: Path) -> Iterator[WeightsServer]:
    root = tmp_path / "served"
    root.mkdir()
    shutil.copy(tiny / "model.onnx", root / "model.onnx")
    served = WeightsServer(root)
    served.thread.start()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


def remote_model(tiny: Path, models: Path, name: str, onnx: dict[str, Any]) -> Path:
    """models/<name>/ holding only the tiny model's card, its weights section naming model.onnx as `onnx`."""
    folder = models / name
    folder.mkdir(parents=True)
    card = read_card(tiny)
    card["weights"] = {"model.onnx": onnx}
    (folder / "card.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")
    return folder


def test_weights_named_by_url_are_fetched_once_verified_and_load(
    tiny: Path, server: WeightsServer, tmp_path: Path
) -> None:
    sha = file_sha256(tiny / "model.onnx")
    models = tmp_path / "models"
    folder = remote_model(tiny, models, "remote", {"url": f"{server.url}/model.onnx", "sha256": sha})
    assert [row["weights"] for row in list_models(Registry(models))] == ["url"]
    assert server.requests == []  # listing fetches nothing

    files = find_model("remote", models_dir=models)
    assert files.weights == {"onnx": folder / "model.onnx"} and server.requests == ["/model.onnx"]
    assert file_sha256(folder / "model.onnx") == sha
    assert sorted(p.name for p in folder.iterdir()) == ["card.yaml", "model.onnx"]  # no partial file left
    assert (folder / "model.onnx").stat().st_mode & 0o777 == 0o644

    detector = load_detector(folder, models_dir=MODELS, taxonomy=TAXONOMY)
    assert (
        detector.version
        == f"remote@{sha[:12]}"
        == model_version("tiny", tiny / "model.onnx").replace("tiny@", "remote@")
    )
    image = draw(64, random_boxes(np.random.default_rng(1), 64, SOURCES["bins"]["draws"], 3), seed=1)
    assert isinstance(detector(image), sv.Detections)
    find_model("remote", models_dir=models)
    load_detector(folder, models_dir=MODELS, taxonomy=TAXONOMY)
    assert server.requests == ["/model.onnx"]  # present and verified: never downloaded again
    assert [row["weights"] for row in list_models(Registry(models))] == ["here"]


def test_a_download_with_another_sha256_is_refused_and_removed(
    tiny: Path, server: WeightsServer, tmp_path: Path
) -> None:
    sha = file_sha256(tiny / "model.onnx")
    wrong = "0" * 64
    folder = remote_model(
        tiny, tmp_path / "models", "remote", {"url": f"{server.url}/model.onnx", "sha256": wrong}
    )
    with pytest.raises(
        ModelError, match=f"refused what {server.url}/model.onnx sent: its sha256 {sha} is not the {wrong}"
    ):
        find_model(folder, models_dir=MODELS)
    assert sorted(p.name for p in folder.iterdir()) == ["card.yaml"]
    assert server.requests == ["/model.onnx"]


def test_an_unreachable_or_missing_file_is_a_clear_error(
    tiny: Path, server: WeightsServer, tmp_path: Path
) -> None:
    sha = file_sha256(tiny / "model.onnx")
    with socket.socket() as probe:  # a port nothing listens on: the server is down
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}/model.onnx"
    for name, url, reason in (
        ("down", down, "Connection refused"),
        ("gone", f"{server.url}/street-v0/model.onnx", "HTTP Error 404"),
    ):
        folder = remote_model(tiny, tmp_path / "models", name, {"url": url, "sha256": sha})
        with pytest.raises(
            ModelError, match=f"not here, and fetching it from {url} failed .*{reason}.*sha256 {sha}"
        ):
            find_model(folder, models_dir=MODELS)
        assert sorted(p.name for p in folder.iterdir()) == ["card.yaml"]


def test_a_changed_file_beside_a_url_is_not_used_or_replaced(
    tiny: Path, server: WeightsServer, tmp_path: Path
) -> None:
    sha = file_sha256(tiny / "model.onnx")
    folder = remote_model(
        tiny, tmp_path / "models", "remote", {"url": f"{server.url}/model.onnx", "sha256": sha}
    )
    (folder / "model.onnx").write_bytes(b"a truncated or replaced file")
    with pytest.raises(ModelError, match=r"is not the .* records; delete the file to fetch it again"):
        find_model(folder, models_dir=MODELS)
    assert server.requests == [] and (folder / "model.onnx").read_bytes() == b"a truncated or replaced file"


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (
            {"model.onnx": {"url": "ftp://example.org/model.onnx", "sha256": "a" * 64}},
            r"weights\.model\.onnx\.url: .*not a http, https, file URL",
        ),
        ({"../../model.onnx": "a" * 64}, r"'\.\./\.\./model\.onnx' is not a weights file name"),
        (
            {"model.onnx": {"url": "https://example.org/model.onnx"}},
            r"weights\.model\.onnx\.sha256: Field required",
        ),
        ({"model.onnx": "not-a-sha"}, r"weights\.model\.onnx\.sha256: String should match"),
        ({"model.onnx": {"sha256": "a" * 64, "mirror": "x"}}, r"weights\.model\.onnx\.mirror: Extra inputs"),
    ],
)
def test_a_broken_weights_section_is_named(tmp_path: Path, weights: dict[str, Any], message: str) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "card.yaml").write_text(yaml.safe_dump({"name": "m", "weights": weights}))
    with pytest.raises(ModelError, match=message):
        find_model(tmp_path / "m", models_dir=MODELS)


# --- only the current model and the one before it keep their weights in the tree ------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=tests", "-c", "user.email=tests@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def checkout(tiny: Path, tmp_path: Path) -> Path:
    """A git checkout with models/m1, m2, m3 (the tiny model's files), current m3 after m1 and m2."""
    repo = tmp_path / "repo"
    models = repo / "models"
    for name in ("m1", "m2", "m3"):
        shutil.copytree(tiny, models / name)
    registry = Registry(models)
    registry.record({"at": AT.isoformat(), "action": "initial", "model": "m1"}, current="m1")
    for name in ("m2", "m3"):
        registry.record({"at": AT.isoformat(), "action": "promote", "model": name}, current=name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "three models")
    return models


def test_prune_keeps_current_and_previous_and_rollback_says_how_to_restore(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models, registry = checkout, Registry(checkout)
    before = find_model(models / "m1", models_dir=MODELS).weights
    version = model_version("m1", before["onnx"])
    shas = {path.name: file_sha256(path) for path in before.values()}
    (models / "m1" / "model.dynamic.onnx").write_bytes(b"a local export, never committed")
    commit = git(models, "rev-parse", "HEAD")

    removed, left = prune(registry)
    assert sorted(p.name for p in removed) == ["model.onnx", "model.pt"] and {
        p.parent.name for p in removed
    } == {"m1"}
    assert left == [models / "m1" / "model.dynamic.onnx"] and left[0].exists()  # not in the commit: kept
    for name in ("m2", "m3"):
        assert (models / name / "model.onnx").exists() and (models / name / "model.pt").exists()
    weights = read_card(models / "m1")["weights"]
    assert weights == {file: {"sha256": sha, "git": commit} for file, sha in shas.items()}
    (models / "m1" / "model.dynamic.onnx").unlink()

    assert main(["models", "--models-dir", str(models), "list"]) == 0
    listed = {line[2:].split()[0]: line[2:].split()[2:4] for line in capsys.readouterr().out.splitlines()[1:]}
    assert listed["m1"] == ["git", commit[:12]] and listed["m3"][0] == "here"

    with pytest.raises(PromotionError, match=r"cannot roll back to m1: .*not kept in the tree") as refused:
        rollback(registry=registry, at=AT, to="m1")
    assert registry.current == "m3"
    command = re.search(
        r"`(git -C \S+ restore --source=[0-9a-f]{40} -- model.onnx model.pt)`", str(refused.value)
    )
    assert command is not None, refused.value
    assert main(["models", "--models-dir", str(models), "rollback", "--to", "m1"]) == 1
    assert "git -C" in capsys.readouterr().err

    subprocess.run(command.group(1).split(), check=True)  # the command the message gives, as it is
    assert rollback(registry=registry, at=AT, to="m1") == "m1"
    assert registry.read()["history"][-1]["version"] == version


def test_prune_removes_only_what_the_commit_holds(checkout: Path) -> None:
    models = checkout
    (models / "m1" / "model.onnx").write_bytes(b"changed since the commit")
    removed, left = prune(Registry(models))
    assert removed == [models / "m1" / "model.pt"] and left == [models / "m1" / "model.onnx"]
    assert isinstance(read_card(models / "m1")["weights"]["model.onnx"], str)  # still the bare sha256
    with pytest.raises(
        ModelError, match=r"no weights for backend 'ultralytics'.*restore --source=[0-9a-f]{40} -- model.pt`"
    ):
        find_model(models / "m1", models_dir=MODELS).weights_for("ultralytics")


def test_prune_needs_a_commit(tmp_path: Path, tiny: Path) -> None:
    shutil.copytree(tiny, tmp_path / "models" / "m1")
    registry = Registry(tmp_path / "models")
    registry.record({"at": AT.isoformat(), "action": "initial", "model": "m1"}, current="m1")
    with pytest.raises(PromotionError, match="'HEAD' is not a commit of a git checkout"):
        prune(registry)
    assert (tmp_path / "models" / "m1" / "model.onnx").exists()


@pytest.mark.parametrize(
    ("names", "listed"),
    [
        (["street-v10", "street-v2", "street-v1"], ["street-v1", "street-v2", "street-v10"]),
        (["street-v1-r2", "street-v1", "street-v1-r10"], ["street-v1", "street-v1-r2", "street-v1-r10"]),
        (["street-v35", "bike-v3", "street-v4"], ["bike-v3", "street-v4", "street-v35"]),
    ],
)
def test_models_are_listed_in_version_order_not_text_order(names: list[str], listed: list[str]) -> None:
    assert sorted(names, key=natural_order) == listed
