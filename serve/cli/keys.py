"""`streetorder keys`: create, list, rate and revoke API keys directly in the database (e.g. the
first admin key, before any key exists to call POST /v1/keys with)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from sqlalchemy import select

from serve.cases.auth import SCOPES, SecretError, create_key, revoke_key, server_secret, set_key_rate
from serve.cases.db import open_database, transaction
from serve.cases.errors import DomainError
from serve.cases.orm import ApiKey
from serve.cases.settings import get_settings
from serve.cli.args import verb_db


def cli(argv: list[str]) -> int:
    """Manage API keys. The key itself is printed once, at creation; only its hash is stored."""
    parser = argparse.ArgumentParser(prog="streetorder keys", description=cli.__doc__)
    parser.add_argument("--db", help="database URL (default STREETORDER_DB_URL or settings)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    db = verb_db()
    create = verbs.add_parser("create", parents=[db], help="create a key and print it")
    create.add_argument("--scope", action="append", required=True, choices=SCOPES, help="repeat for several")
    create.add_argument("--name", default="cli", help="who uses it (appears in flow logs)")
    rate_help = "the key's own rate, requests a minute (default: its scopes' rate)"
    create.add_argument("--rate-per-min", type=int, metavar="N", help=rate_help)
    verbs.add_parser("list", parents=[db], help="list keys (ids, names, scopes, own rates; never secrets)")
    change = verbs.add_parser(
        "rate", parents=[db], help="change a key's rate (services apply it on the key's next request)"
    )
    change.add_argument("key_id")
    new_rate = change.add_mutually_exclusive_group(required=True)
    new_rate.add_argument(
        "--rate-per-min", type=int, metavar="N", help="the key's own rate, requests a minute"
    )
    new_rate.add_argument("--by-scope", action="store_true", help="back to the rate of its scopes")
    revoke = verbs.add_parser("revoke", parents=[db], help="revoke a key by its id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)
    settings = get_settings()
    # only `create` may start a database: a mistyped path for the others is an error, not a new empty one
    factory = open_database(args.db or settings.db_url, create=args.verb == "create")
    now = datetime.now(UTC)
    try:
        with transaction(factory) as session:
            if args.verb == "create":
                key, row = create_key(
                    session,
                    name=args.name,
                    scopes=args.scope,
                    pepper=server_secret(settings),
                    now=now,
                    rate_per_min=args.rate_per_min,
                )
                print(key)
                print(
                    f"key id {row.key_id}, scopes {', '.join(row.scopes)}: keep it now, not shown again",
                    file=sys.stderr,
                )
            elif args.verb == "list":
                for row in session.scalars(select(ApiKey).order_by(ApiKey.id)):
                    state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "valid"
                    rate = f"{row.rate_per_min}/min" if row.rate_per_min else "by scope"
                    print(f"{row.key_id}  {row.name:<20}  {','.join(row.scopes):<40}  {rate:<12}  {state}")
            elif args.verb == "rate":
                row = set_key_rate(session, args.key_id, args.rate_per_min)
                rate = (
                    f"{row.rate_per_min} requests a minute" if row.rate_per_min else "the rate of its scopes"
                )
                print(f"{args.key_id}: {rate}, from its next request")
            else:
                revoke_key(session, args.key_id, now)
                print(f"revoked {args.key_id} (services drop it from memory within 30 s)")
    except (SecretError, DomainError) as err:
        print(f"streetorder keys: {err}", file=sys.stderr)
        return 1
    return 0
