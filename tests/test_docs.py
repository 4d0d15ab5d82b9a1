"""Generated parts of the docs stay equal to what generates them: the model history table in
docs/training.md is `streetorder models table` on models/ (the registry and the cards), and the
README's settings table is `settings_table()` of the settings model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generated_block(document: Path, name: str) -> str:
    """The text between `<!-- NAME: begin -->` and `<!-- NAME: end -->` in a markdown file."""
    found = re.search(
        rf"<!-- {name}: begin -->\n(.*?)<!-- {name}: end -->", document.read_text(encoding="utf-8"), re.S
    )
    assert found, f"{document}: no generated block '{name}'"
    return found.group(1)


def test_model_history_table_is_the_registrys() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "serve.cli", "models", "--models-dir", str(ROOT / "models"), "table"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| street-v10 |" in printed and "current" in printed
    assert generated_block(ROOT / "docs" / "training.md", "models table") == printed, (
        "docs/training.md's model history is out of date: paste `streetorder models table` there"
    )


def test_readme_settings_table_is_the_settings_model() -> None:
    from serve.cases.settings import settings_table

    assert generated_block(ROOT / "README.md", "settings table") == settings_table(), (
        "README.md's settings table is out of date: paste settings_table() (serve/cases/settings.py) there"
    )
