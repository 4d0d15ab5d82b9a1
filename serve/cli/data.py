"""`streetorder data SUBCOMMAND ...`: making and managing training data.

A small table of sub-commands, each a module with `cli(argv) -> int` imported only when asked for
(the same pattern as the modes in serve/cli/main.py). Add a sub-command with one entry in SUBCOMMANDS.
"""

from __future__ import annotations

import importlib
import sys

# sub-command -> (module with `cli(argv) -> int`, one line of help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth-flyers": (
        "serve.cli.data_flyers",
        "paste rendered flyers onto real street photos (a YOLO dataset)",
    ),
    "paste": (
        "serve.cli.data_paste",
        "paste one source's objects into photos where reviews confirmed their class absent",
    ),
    "import": (
        "serve.cli.data_import",
        "add a Label Studio / CVAT export to a versioned dataset (validated)",
    ),
    "review": (
        "serve.cli.data_review",
        "reviewed negatives: propose boxes of classes a source does not label, sheets, decisions",
    ),
    "queue": (
        "serve.cli.data_queue",
        "pick images worth labelling: Label Studio tasks and a CVAT YOLO zip",
    ),
    "pull": (
        "serve.cli.data_pull",
        "fetch annotations made in Label Studio since the last pull (its API) into the inbox",
    ),
}


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "usage: streetorder data SUBCOMMAND [options]\n\nsub-commands:\n" + "\n".join(lines)


def cli(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"streetorder data: unknown sub-command '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.cli(rest) or 0)
