"""The docs against the code. Generated parts stay equal to what generates them: the model history
table in docs/training.md is `streetorder models table` on models/ (the registry and the cards), and
the README's settings table is `settings_table()` of the settings model. Every reference the README
and docs/*.md make is one test row naming the doc and line, so a rename fails on the doc that still
names the old thing: each `streetorder MODE ... --flag` (the mode, its sub-commands, flags and
choices, read from the parsers' own --help: nothing runs), each endpoint (`GET /v1/...`, Open311,
with the query parameters and filters named) in the app's routes, each config default quoted as
"`key` (N ...)" against configs/*.yaml, each `STREETORDER_*` variable, each repository path, each
function named by its file or called, and each identifier in inline code (in some code, config or
test file)."""

from __future__ import annotations

import contextlib
import functools
import glob
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from configured import TAXONOMY
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from test_access import all_routes

from serve.api.app import create_app
from serve.cases.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


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


def doc_text(doc: Path) -> str:
    """The doc with its fenced blocks blanked (same length and lines), for inline code spans."""
    return re.sub(r"(?ms)^```.*?^```", lambda m: re.sub(r"[^\n]", " ", m.group(0)), doc.read_text("utf-8"))


def code_spans(doc: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every command of a fenced block and every inline code span (newlines as
    spaces), the line being where the text starts. A block's command goes on over lines ending in
    `\\` and over indented lines of options (`    [--flag ...]`, `    --flag`)."""
    commands: list[list[Any]] = []  # [line, text, continued]
    fenced = False
    for number, line in enumerate(doc.read_text("utf-8").split("\n"), 1):
        if line.lstrip().startswith("```"):
            if fenced:
                yield from ((start, text) for start, text, _ in commands)
            fenced, commands = not fenced, []
            continue
        if not fenced:
            continue
        options = line[:1].isspace() and line.lstrip().startswith(("[", "--"))
        if commands and (commands[-1][2] or options):
            commands[-1][1] += " " + line.strip()
        else:
            commands.append([number, line.strip(), False])
        commands[-1][2] = commands[-1][1].endswith("\\")
        commands[-1][1] = commands[-1][1].removesuffix("\\")
    text = doc_text(doc)
    for span in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        yield text.count("\n", 0, span.start()) + 1, span.group(1).replace("\n", " ")


def rel(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


# ---- CLI: `streetorder MODE [SUB...] --flag` --------------------------------------------------

COMMAND = re.compile(r"(?:\bstreetorder|\bpython3? -m serve\.cli)\s+((?:(?! \| |;|&&| #).)+)")
WORD = re.compile(r"[a-z][a-z0-9-]*(?:\|[a-z][a-z0-9-]*)*")


def documented_commands() -> list[Any]:
    rows = []
    for doc in DOCS:
        for line, span in code_spans(doc):
            for found in COMMAND.finditer(span):
                command = found.group(1).strip()
                if WORD.match(command):  # `streetorder MODE ...` names no mode
                    rows.append(pytest.param(command, id=f"{rel(doc)}:{line}: streetorder {command[:60]}"))
    return rows


@functools.cache
def cli_help(words: tuple[str, ...]) -> tuple[int, str]:
    """Exit status and --help text of `streetorder WORDS --help` (parsers only: nothing runs), or
    the complaint about a mode or sub-command that does not exist."""
    from serve.cases.settings import get_settings
    from serve.cli.main import main

    printed, said = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(said):
        try:
            code = main([*words, "--help"])
        except SystemExit as stop:
            code = int(stop.code or 0)
        finally:
            get_settings.cache_clear()  # the modes' settings, read from this environment, are not kept
    complaint = [line for line in said.getvalue().splitlines() if "error" in line or "unknown" in line]
    return code, re.sub(r"\x1b\[[0-9;]*m", "", printed.getvalue()) + "\n".join(complaint)


@pytest.mark.parametrize("command", documented_commands())
def test_a_documented_command_is_accepted(command: str) -> None:
    tokens = command.replace("[", " ").replace("]", " ").split()
    words: list[str] = []
    for token in tokens:
        if not WORD.fullmatch(token):
            break
        words.append(token)
    accepted: set[str] = set()
    choices: dict[str, set[str]] = {}
    for depth in range(1, len(words) + 1):
        for word in words[depth - 1].split("|"):  # `data review propose|sheets`: each one
            code, text = cli_help((*(w.split("|")[0] for w in words[: depth - 1]), word))
            # a positional value (`users create NAME`) shows its mode's help, a wrong sub-command exit 2
            assert code == 0, f"`streetorder {' '.join(words[:depth])}` is no command: {text}"
            accepted |= set(re.findall(r"(?<![\w-])--[a-z][\w-]*", text))
            for flag, listed in re.findall(r"(--[a-z][\w-]*) \{([^}]*)\}", text):
                choices.setdefault(flag, set()).update(listed.split(","))
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", command):
        assert flag in accepted, f"`streetorder {' '.join(words)}` has no {flag}"
    for flag, value in re.findall(r"(--[a-z][a-z0-9-]*)[ =]([a-z0-9][a-z0-9|-]*)(?![\w./:])", command):
        for one in value.split("|") if flag in choices else ():
            assert one in choices[flag], f"{flag} {one}: not one of {sorted(choices[flag])}"


# ---- HTTP: `GET /v1/...`, bare `/v1/...` paths, query parameters ------------------------------

ENDPOINT = re.compile(
    r"(?:\b(GET|POST|PUT|PATCH|DELETE|HEAD)\s+)?(?<![\w.:/~-])"
    r"(/(?:v1|open311|labelstudio|healthz|readyz|metrics)(?![\w-])[\w{}./-]*)(\?[^\s`)]*)?"
)


def documented_endpoints() -> list[Any]:
    rows = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        for found in ENDPOINT.finditer(text):
            method, path, query = found.groups()
            line = text.count("\n", 0, found.start()) + 1
            path = path.rstrip("./")
            # `GET /v1/cases` (filters `state`, `event`, ...; cursor paging): query parameters too
            filters = re.match(r"`? \(filters ([^;)]*)", text[found.end() :])
            if filters:
                query = "?" + "&".join(f"{name}=" for name in re.findall(r"`(\w+)`", filters.group(1)))
            rows.append(
                pytest.param(method, path, query or "", id=f"{rel(doc)}:{line}: {method or ''} {path}")
            )
    return rows


def template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path)) + "$")


def query_names(route: APIRoute) -> set[str]:
    """Query parameters of a route, a pydantic model's fields (`Annotated[CaseQuery, Query()]`) included."""
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        pending.extend(dependant.dependencies)
        for param in dependant.query_params:
            kind = param.field_info.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                names |= {field.alias or name for name, field in kind.model_fields.items()}
            else:
                names.add(param.alias)
    return names


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    folder = tmp_path_factory.mktemp("docs")
    return create_app(
        Settings(
            db_url=f"sqlite:///{folder / 'docs.db'}",
            secret="docs-test-secret-0123456789",
            model="none",
            evidence_dir=folder / "evidence",
            annotations_dir=folder / "annotations",
        )
    )


@pytest.mark.parametrize(("method", "path", "query"), documented_endpoints())
def test_a_documented_endpoint_is_a_route(app: FastAPI, method: str | None, path: str, query: str) -> None:
    routes = [r for r in all_routes(app.routes) if isinstance(getattr(r, "path", None), str)]
    named = re.sub(r"\{[^}]*\}|<[^>]*>", "X", path)
    matching = [
        r
        for r in routes
        if template(r.path).match(named) and (method is None or method in (getattr(r, "methods", None) or ()))
    ]
    if not matching and method is None:  # `/open311/v2`, `/labelstudio`: a prefix of routes
        assert any(r.path.startswith(path + "/") for r in routes), f"no route is or starts with {path}"
        return
    assert matching, f"no route {method or ''} {path}"
    for name in re.findall(r"(?:^\?|&)([a-z_]+)=", query):
        known = set().union(*(query_names(r) for r in matching if isinstance(r, APIRoute)))
        assert name in known, f"{path} takes no query parameter {name} (it takes {sorted(known)})"


# ---- config defaults quoted as "`key` (N ...)", STREETORDER_* variables ------------------------

NOT_CONFIG = {"close_mosaic": "an ultralytics training argument"}
FILE_SUFFIXES = {"onnx", "pt", "yaml", "json", "csv", "log", "html", "jpg", "py", "md", "txt", "geojson"}


def config_values() -> dict[str, list[Any]]:
    """Every key path of configs/*.yaml (and each of its suffixes) -> the values it takes there."""
    values: dict[str, list[Any]] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                path = f"{prefix}.{key}" if prefix else str(key)
                parts = path.split(".")
                for start in range(len(parts)):
                    values.setdefault(".".join(parts[start:]), []).append(value)
                walk(value, path)
        elif isinstance(node, list):
            for item in node:
                walk(item, prefix)

    for file in sorted((ROOT / "configs").glob("*.yaml")):
        walk(yaml.safe_load(file.read_text("utf-8")), "")
    return values


def documented_defaults() -> list[Any]:
    classes = set(TAXONOMY.names)
    rows = []
    for doc in DOCS:
        text = doc_text(doc)
        for found in re.finditer(r"`([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)` \((-?[0-9][0-9.]*)", text):
            key, value = found.groups()
            if key in NOT_CONFIG or key in classes or key.rsplit(".", 1)[-1] in FILE_SUFFIXES:
                continue
            line = text.count("\n", 0, found.start()) + 1
            rows.append(pytest.param(key, float(value), id=f"{rel(doc)}:{line}: {key} ({value})"))
    return rows


@pytest.mark.parametrize(("key", "value"), documented_defaults())
def test_a_quoted_config_default_is_the_shipped_value(key: str, value: float) -> None:
    shipped = config_values().get(key)
    assert shipped is not None, f"`{key}` is in no file of configs/"
    numbers = [float(v) for v in shipped if isinstance(v, int | float) and not isinstance(v, bool)]
    assert value in numbers, f"`{key}` is {shipped[:5]} in configs/, the doc says {value:g}"


def documented_variables() -> list[Any]:
    rows = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        for found in re.finditer(r"STREETORDER_[A-Z0-9_]*[A-Z0-9]", text):
            line = text.count("\n", 0, found.start()) + 1
            rows.append(pytest.param(found.group(0), id=f"{rel(doc)}:{line}: {found.group(0)}"))
    return rows


@pytest.mark.parametrize("variable", documented_variables())
def test_a_documented_variable_is_read(variable: str) -> None:
    setting = variable.removeprefix("STREETORDER_").lower()
    read_by_name = any(f'"{variable}"' in f.read_text("utf-8") for f in (ROOT / "serve").rglob("*.py"))
    assert setting in Settings.model_fields or read_by_name, f"nothing reads {variable}"


# ---- repository paths and the functions named by their file ------------------------------------

REPO_PATH = re.compile(
    r"(?<![\w./~-])((?:serve|vision|configs|benchmarks|docs|tests|scripts|models|datasets)/[\w./{}*,-]*[\w}*])"
)
MADE_AT_RUN_TIME = {"datasets/bureau": "`data import` and `models retrain` make it"}


def documented_paths() -> list[Any]:
    rows = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        for found in REPO_PATH.finditer(text):
            path = found.group(1)
            weights = re.fullmatch(r"models/[\w.-]+/model\.(pt|onnx|int8\.onnx)", path)
            # NAME, N: placeholders; weights of older models come back from git (docs/training.md)
            if weights or re.search(r"[A-Z]{2,}", path) or path in MADE_AT_RUN_TIME:
                continue
            line = text.count("\n", 0, found.start()) + 1
            rows.append(pytest.param(path, id=f"{rel(doc)}:{line}: {path}"))
    return rows


@pytest.mark.parametrize("path", documented_paths())
def test_a_documented_path_exists(path: str) -> None:
    pattern = re.sub(r"\{([^}]*)\}", lambda m: "{" + m.group(1) + "}", path)
    expanded = [pattern]
    while any("{" in p for p in expanded):  # `{state.pt,legs.yaml}`: each one
        expanded = [
            p.replace(f"{{{m}}}", choice, 1)
            for p in expanded
            for m in re.findall(r"\{([^}]*)\}", p)[:1]
            for choice in m.split(",")
        ]
    for one in expanded:
        assert glob.glob(str(ROOT / one)), f"{one} does not exist"


PY_FILE = r"((?:serve|vision|benchmarks|tests|scripts)/[\w/]+\.py)"
NAMED_IN_FILE = [  # (pattern, group of the file, group of the name)
    (re.compile(PY_FILE + r":\s*`?([A-Za-z_]\w*)"), 1, 2),  # serve/api/redaction.py: evidence_file
    (re.compile(r"`([A-Za-z_]\w*)(?:\([^`]*\))?`\s+(?:in|of|from)\s+`?" + PY_FILE), 2, 1),  # `x` in f.py
    (re.compile(r"`([A-Za-z_]\w*)(?:\([^`]*\))?`\s+\(`?" + PY_FILE), 2, 1),  # `x` (f.py
]
DOTTED = re.compile(r"(?<![\w/.])((?:serve|vision)\.[a-z_]+(?:\.[A-Za-z_]\w*)+)")


def documented_functions() -> list[Any]:
    rows = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        for pattern, file_group, name_group in NAMED_IN_FILE:
            for found in pattern.finditer(text):
                file, name = found.group(file_group), found.group(name_group)
                line = text.count("\n", 0, found.start()) + 1
                rows.append(pytest.param(file, name, id=f"{rel(doc)}:{line}: {file}: {name}"))
        for found in DOTTED.finditer(text):
            parts = found.group(1).split(".")
            line = text.count("\n", 0, found.start()) + 1
            for cut in range(len(parts), 1, -1):  # the longest prefix that is a module or package
                module = ROOT.joinpath(*parts[:cut])
                if module.with_suffix(".py").is_file() or module.is_dir():
                    file = (
                        module.with_suffix(".py")
                        if module.with_suffix(".py").is_file()
                        else module / "__init__.py"
                    )
                    rest = parts[cut:]
                    if rest and rest[0] not in ("py", "md", "yaml"):
                        rows.append(
                            pytest.param(
                                str(file.relative_to(ROOT)),
                                rest[0],
                                id=f"{rel(doc)}:{line}: {found.group(1)}",
                            )
                        )
                    break
            else:
                rows.append(pytest.param(".".join(parts), "", id=f"{rel(doc)}:{line}: {found.group(1)}"))
    return rows


@pytest.mark.parametrize(("file", "name"), documented_functions())
def test_a_function_named_by_its_file_is_defined_there(file: str, name: str) -> None:
    assert (ROOT / file).is_file(), f"{file} does not exist"
    source = (ROOT / file).read_text("utf-8")
    defined = rf"(?m)^\s*(?:async\s+)?(?:def|class)\s+{name}\b|^\s*{name}\s*[:=]"
    assert re.search(defined, source), f"{file} defines no {name}"


NOT_OURS = {"now": "datetime's", "Security": "FastAPI's", "http": "`http(s)://`", "torch.load": "PyTorch's"}


def documented_calls() -> list[Any]:
    rows = []
    for doc in DOCS:
        text = doc_text(doc)
        for found in re.finditer(r"`([A-Za-z_][\w.]*)\(", text):
            stdlib = found.group(1).split(".")[0] in sys.stdlib_module_names  # `secrets.token_urlsafe(32)`
            if found.group(1) not in NOT_OURS and not stdlib:
                line = text.count("\n", 0, found.start()) + 1
                rows.append(pytest.param(found.group(1), id=f"{rel(doc)}:{line}: {found.group(1)}()"))
    return rows


@pytest.mark.parametrize("call", documented_calls())
def test_a_documented_call_is_defined(call: str) -> None:
    """`record_finding(...)`, `Dataset.verify()`: a file of ours defines it (beside the class)."""
    *owner, name = call.split(".")
    for folder in (ROOT / d for d in ("serve", "vision", "benchmarks", "scripts")):
        for source in (f.read_text("utf-8") for f in folder.rglob("*.py")):
            if re.search(rf"(?m)^\s*(?:async\s+)?def {name}\b", source) and all(
                re.search(rf"(?m)^class {cls}\b", source) for cls in owner
            ):
                return
    raise AssertionError(f"no file of serve/, vision/, benchmarks/ or scripts/ defines {call}")


CODE_SUFFIXES = {".py", ".yaml", ".js", ".html", ".geojson", ".mako", ".css", ".toml"}
NAMED_ELSEWHERE = {
    "AWS_SECRET_ACCESS_KEY": "s3fs's",
    "STREET_V9_MODEL_PT": "a placeholder",
    "InferRequest.infer": "OpenVINO's",
    "timeout_keep_alive": "uvicorn's",
    "client_header_timeout": "nginx's",
    "client_body_timeout": "nginx's",
    "large_client_header_buffers": "nginx's",
}


@functools.cache
def code_words() -> frozenset[str]:
    """Every identifier in the code, configs, tests and build files (their names as words)."""
    words: set[str] = set()
    for folder in ("serve", "vision", "configs", "benchmarks", "scripts", "models", "tests"):
        for file in (ROOT / folder).rglob("*"):
            if file.suffix in CODE_SUFFIXES and file.is_file():
                words |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", file.read_text("utf-8", errors="replace")))
    for file in ("pyproject.toml", "Makefile"):
        words |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", (ROOT / file).read_text("utf-8")))
    return frozenset(words)


def documented_names() -> list[Any]:
    """Inline code naming an identifier with `_` or a dotted one: a setting, a config key, a field,
    a function (`dwell.restart_bridge_s`, `valid_report_rate`, `Settings.taxonomy`)."""
    rows = []
    for doc in DOCS:
        text = doc_text(doc)
        for found in re.finditer(r"(?<!`)`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\(\))?`", text):
            name = found.group(1)
            if ("_" in name or "." in name) and name not in NAMED_ELSEWHERE and not FILE_NAME.search(name):
                line = text.count("\n", 0, found.start()) + 1
                rows.append(pytest.param(name, id=f"{rel(doc)}:{line}: {name}"))
    return rows


FILE_NAME = re.compile(r"\.(?:py|yaml|md|txt|json|jsonl|csv|jpg|png|log|geojson|onnx|pt|html|xlsx|zip)$")


@pytest.mark.parametrize("name", documented_names())
def test_a_documented_name_is_in_the_code(name: str) -> None:
    if name.isupper() and name.removeprefix("STREETORDER_").lower() in Settings.model_fields:
        return  # a setting, named with or without its prefix (`LABELSTUDIO_URL`)
    missing = [part for part in name.split(".") if part not in code_words()]
    assert not missing, f"`{name}`: {', '.join(missing)} is in no code, config or test file"
