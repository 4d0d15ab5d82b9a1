"""A plain, non-editable install works outside the checkout: the wheel carries configs/, the model
registry and the cards, and the demo scan runs from another folder.

To stay fast, the wheel is built without build isolation (from a copy of the tree, so the checkout
gets no build/ folder) and installed with `--no-deps` into a fresh venv; the heavy dependencies
(torch, ultralytics, ONNX Runtime, ...) come from this interpreter's site-packages, named in a .pth
file of the new venv: what `--system-site-packages` gives for a venv made from a system Python.
The editable install of the checkout in that site-packages stays inert there (a .pth file of a
folder added by a .pth line is not run), so only the wheel's copy of the code can be imported.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from configured import MODELS, ROOT

SHARED = ROOT.parent / "shared" / "datasets"
WEIGHTS_AND_BUILDS = (
    "*.pt",
    "*.onnx",
    "*.xml",
    "*.bin",
    ".venv",
    ".git",
    "build",
    "runs",
    "out",
    "*.egg-info",
)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh venv holding the wheel built from this tree."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*WEIGHTS_AND_BUILDS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "STREETORDER_"))}
    wheels = root / "wheels"
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source)], root, env)
    run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], root, env)
    python = root / "venv" / "bin" / "python"
    [wheel] = wheels.glob("streetorder-*.whl")
    run([*pip, "--python", str(python), "install", "--no-deps", "-q", str(wheel)], root, env)
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root, env
        ).stdout.strip()
    )
    (site / "heavy-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return python


def elsewhere(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder outside the checkout and an environment without the checkout's paths or settings."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "STREETORDER_"))}
    return folder, {**env, "STREETORDER_CACHE_DIR": str(tmp_path / "cache")}


def test_the_wheel_finds_its_configs_registry_and_cards(installed: Path, tmp_path: Path) -> None:
    folder, env = elsewhere(tmp_path)
    where = run(
        [str(installed), "-c", "import serve, vision; print(serve.__file__, vision.__file__)"], folder, env
    )
    assert str(ROOT) not in where.stdout  # the wheel's copy, not the checkout's
    settings = (
        "from serve.cases.settings import get_settings as g; s = g(); print(s.configs_dir, s.models_dir)"
    )
    configs, models = run([str(installed), "-c", settings], folder, env).stdout.split()
    assert (Path(configs) / "taxonomy.yaml").is_file() and not Path(configs).is_relative_to(ROOT)
    listed = run([str(installed), "-m", "serve.cli", "models", "list"], folder, env).stdout
    current = next(line for line in listed.splitlines() if line.startswith("*"))
    assert current.split()[1] == run_registry_current()  # the registry travelled with the wheel
    assert "street-v2" in listed  # and a refused candidate's card
    assert not list(Path(models).glob("*/*.onnx"))  # weights do not travel


def test_the_wheel_serves_the_api_docs_without_a_cdn(installed: Path, tmp_path: Path) -> None:
    """Swagger UI's files (serve/static/apidocs/, a folder below static/) travel with the wheel:
    an installed service's /docs is not blank on a closed network."""
    folder, env = elsewhere(tmp_path)
    check = (
        "from serve.api.routers.apidocs import ASSETS, FOLDER; "
        "print(FOLDER, all(p.stat().st_size > 0 for p in ASSETS.values()), (FOLDER / 'LICENSE').is_file())"
    )
    where, files, licence = run([str(installed), "-c", check], folder, env).stdout.split()
    assert not Path(where).is_relative_to(ROOT) and files == licence == "True"


def run_registry_current() -> str:
    import yaml

    return str(yaml.safe_load((MODELS / "registry.yaml").read_text(encoding="utf-8"))["current"])


@pytest.mark.skipif(
    not (SHARED / "garbage-cn").is_dir(), reason="../shared/datasets is not beside the checkout"
)
def test_the_demo_scan_runs_from_another_folder(installed: Path, tmp_path: Path) -> None:
    """The weights of a deployment live in its own models folder or behind a url; here the current
    model's file from the checkout is named directly."""
    folder, env = elsewhere(tmp_path)
    weights = MODELS / run_registry_current() / "model.onnx"
    if not weights.is_file():
        pytest.skip(f"{weights} is not in this checkout")
    demo = [str(installed), "-m", "serve.cli.demo", "--dataset", str(SHARED / "garbage-cn"), "--photos", "6"]
    done = run([*demo, "--model", str(weights)], folder, env)
    assert "demo: done" in done.stdout, done.stdout
    assert (folder / "out" / "demo" / "report" / "report.html").is_file()  # written where it ran
    filed = re.search(r"-> (\d+) new case\(s\)", done.stdout)
    assert filed and int(filed.group(1)) > 0, done.stdout
