"""`streetorder MODE ...`: one command, one mode per job.

Each mode lives in its own module and is imported only when asked for, so that `streetorder train`
runs on a host that has only ultralytics, torch and PyYAML.
"""

from __future__ import annotations

import importlib
import os
import sys

# mode -> (module with `cli(argv) -> int`, one line of help)
MODES: dict[str, tuple[str, str]] = {
    "train": ("serve.cli.train", "train a detector on a dataset mix (partial labels handled)"),
    "scan": ("serve.cli.scan", "scan patrol photos (folders, files, lists) into grid cases and a report"),
    "relay": ("serve.cli.relay", "train at 640 px on short-lived GPU hosts in turns: pack, leg, land"),
    "evaluate": ("serve.cli.evaluate", "per-class P, R, AP50, AP50-95 of a model on a data.yaml"),
    "export": (
        "serve.cli.export",
        "package a checkpoint as models/NAME and export ONNX / OpenVINO / INT8",
    ),
    "serve": ("serve.cli.serve", "run the case service (HTTP API, Open311, metrics) with uvicorn"),
    "keys": ("serve.cli.keys", "create, list and revoke API keys"),
    "users": ("serve.cli.users", "create, list and disable people's console accounts (roles, departments)"),
    "stats": (
        "serve.cli.stats",
        "filing/disposal/closing rates, 10-day street ranking, worst spots (JSON)",
    ),
    "data": ("serve.cli.data", "make and manage training data: synth-flyers, ... (streetorder data --help)"),
    "ocr": ("serve.cli.ocr", "read text and phone numbers on flyers (crops or a synthetic set: --bench)"),
    "watch": (
        "serve.cli.watch",
        "pull one camera's stream (RTSP/HTTP/file) and turn what stays into cases",
    ),
    "bench": (
        "serve.cli.bench",
        "measure the scan: img/s vs yolo predict, per-stage cost, efficiency, memory",
    ),
    "calendar": ("serve.cli.calendar", "check that the working calendar lists the years deadlines reach"),
    "db": ("serve.cli.db", "back up the case database or restore it (SQLite online backup, pg_dump)"),
    "models": (
        "serve.cli.models",
        "list, promote (judged on a frozen holdout), roll back and retrain models",
    ),
}


def usage() -> str:
    width = max(len(m) for m in MODES)
    lines = [f"  {mode:<{width}}  {help_}" for mode, (_, help_) in MODES.items()]
    return "usage: streetorder MODE [options]   (streetorder MODE --help)\n\nmodes:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    mode, rest = argv[0], argv[1:]
    if mode not in MODES:
        print(f"streetorder: unknown mode '{mode}'\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(MODES[mode][0])
    try:
        code = int(module.cli(rest) or 0)
        sys.stdout.flush()  # a reader gone (`| head`) shows here, not as an error at exit
        return code
    except KeyboardInterrupt:  # Ctrl-C: the modes that must tidy up catch it themselves (scan, watch)
        print(f"streetorder {mode}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `streetorder stats ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except Exception as err:
        if not said_in_one_line(mode, err):
            raise
        return 1


def said_in_one_line(mode: str, err: Exception) -> bool:
    """Errors any mode can meet whose message is the whole story, printed as such: a database that
    cannot be opened or written, a setting that cannot be used (its variable), a configuration file that
    cannot be used (its name and field), a file or folder that cannot be read or written. (The
    database module is only looked up when a mode loaded it: `train` runs where SQLAlchemy is not
    installed.)"""
    database = sys.modules.get("serve.cases.db")
    if database is not None and isinstance(err, database.DatabaseUnavailable):
        print(f"streetorder {mode}: {err}", file=sys.stderr)
        return True
    if database is not None and database.is_read_only(err):  # a read-only file, folder or mount
        print(
            f"streetorder {mode}: the case database cannot be written ({database.database_said(err)}): "
            "make its file and its folder writable, then run again",
            file=sys.stderr,
        )
        return True
    settings = sys.modules.get("serve.cases.settings")
    said = settings.settings_problem(err) if settings is not None else None
    if said is not None:  # a hostile or mistyped STREETORDER_* value: named, not a traceback
        print(f"streetorder {mode}: {said}", file=sys.stderr)
        return True
    files = sys.modules.get("vision.core.yamlfile")
    if files is not None and isinstance(err, files.ConfigError):  # a config file: named with its field
        print(f"streetorder {mode}: {err}", file=sys.stderr)
        return True
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        print(f"streetorder {mode}: {err.filename}: {err.strerror}", file=sys.stderr)
        return True
    return False


if __name__ == "__main__":
    sys.exit(main())
