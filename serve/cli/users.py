"""`streetorder users`: create, list and disable console accounts directly in the database (the first
admin, before anyone can sign in to create the others with POST /v1/users)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime

from sqlalchemy import select

from serve.cases.auth import SecretError, server_secret
from serve.cases.db import open_database, transaction
from serve.cases.domain import load_domain
from serve.cases.enums import Role
from serve.cases.errors import DomainError
from serve.cases.orm import User
from serve.cases.people import create_user, disable_user
from serve.cases.settings import get_settings
from serve.cli.args import verb_db

PASSWORD_ENV = "STREETORDER_NEW_PASSWORD"


def ask_password(username: str) -> str:
    """Asked on the terminal; without one (cron, a pipe) getpass would read the end of input."""
    if not sys.stdin.isatty():
        raise NoPassword(f"no password for {username}: run it in a terminal or set {PASSWORD_ENV}")
    return getpass.getpass(f"password for {username}: ")


class NoPassword(Exception):
    """Nobody could be asked for a password (no terminal, and STREETORDER_NEW_PASSWORD unset)."""


def cli(argv: list[str]) -> int:
    """Manage people's accounts. The password is asked for (or read from STREETORDER_NEW_PASSWORD),
    never taken as an argument: command lines end up in shell histories and process lists."""
    parser = argparse.ArgumentParser(prog="streetorder users", description=cli.__doc__)
    parser.add_argument("--db", help="database URL (default STREETORDER_DB_URL or settings)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    db = verb_db()
    create = verbs.add_parser("create", parents=[db], help="create an account")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", help="display name in flow logs (default: the username)")
    create.add_argument("--department", help="handlers: their department (configs/routing.yaml)")
    create.add_argument("--grid", action="append", default=[], help="inspectors: a responsibility grid code")
    verbs.add_parser("list", parents=[db], help="list accounts")
    disable = verbs.add_parser("disable", parents=[db], help="disable an account and end its sessions")
    disable.add_argument("username")
    args = parser.parse_args(argv)
    settings = get_settings()
    # only `create` may start a database: a mistyped path for the others is an error, not a new empty one
    factory = open_database(args.db or settings.db_url, create=args.verb == "create")
    now = datetime.now(UTC)
    try:
        with transaction(factory) as session:
            if args.verb == "create":
                domain = load_domain(settings)
                pepper = server_secret(settings)  # refused before anyone types a password
                password = os.environ.get(PASSWORD_ENV) or ask_password(args.username)
                user = create_user(
                    session,
                    username=args.username,
                    password=password,
                    role=args.role,
                    pepper=pepper,
                    now=now,
                    display_name=args.name,
                    department=args.department,
                    grids=args.grid,
                    departments=tuple(domain.routing.departments),
                    layout=domain.rules.grids,
                )
                print(f"created {user.username} ({user.role}) {user.department or ''}".rstrip())
            elif args.verb == "list":
                for row in session.scalars(select(User).order_by(User.id)):
                    state = f"disabled {row.disabled_at:%Y-%m-%d %H:%M}" if row.disabled_at else "active"
                    where = row.department or ",".join(row.grids) or "-"  # an inspector's grids
                    print(f"{row.username:<20}  {row.role:<10}  {row.display_name:<16}  {where}  {state}")
            else:
                disable_user(session, args.username, now)
                print(f"disabled {args.username}; their sessions have ended")
    except (SecretError, DomainError, NoPassword) as err:
        print(f"streetorder users: {err}", file=sys.stderr)
        return 1
    return 0
