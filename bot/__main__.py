"""``python -m bot``: the project's command line.

    migrate                      apply sql/ migrations
    seed                         create the demo clinic (idempotent)
    token ROLE [ID|NAME]         print a signed token on the last line (services, integrations)
    user add|passwd|disable      staff accounts for the /admin and /dentist pages
    prune-events --older-than 7d trim the outbox
    db start|stop|url            the embedded PostgreSQL (used when DATABASE_URL is unset)
    up                           start everything; Ctrl-C stops it all
    rasa-env                     print `export` lines for endpoints.yml, as `up` gives them to Rasa
"""

from __future__ import annotations

import argparse
import logging
import sys

from .settings import SettingsError, get_settings
from .user_cli import add_parser as add_user_parser


def _cmd_migrate(args) -> int:
    from .db import conninfo
    from .migrate import migrate

    applied = migrate(conninfo())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def _cmd_seed(args) -> int:
    from .db import conninfo, get_engine
    from .migrate import migrate
    from .seed import seed

    migrate(conninfo())
    added = seed(get_engine(), get_settings())
    print("seeded: " + ", ".join(f"{k}={v}" for k, v in added.items()))
    return 0


def _cmd_token(args) -> int:
    from .tokens import TokenError, mint

    try:
        token = mint(args.role, args.ident, ttl_minutes=args.ttl)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _cmd_prune(args) -> int:
    from .db import conninfo
    from .outbox_admin import parse_age, prune_events

    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"deleted {prune_events(conninfo(), age)} outbox rows older than {args.older_than}")
    return 0


def _cmd_db(args) -> int:
    from . import embedded

    settings = get_settings()
    if args.action == "stop":
        print("stopped" if embedded.stop(settings.embedded_pg_dir) else "not running")
        return 0
    url = embedded.start(settings.embedded_pg_dir, settings.embedded_pg_port)
    print(url)
    return 0


def _cmd_up(args) -> int:
    from .launcher import run

    return run(train=not args.no_train, skip=frozenset(args.skip))


def _cmd_rasa_env(args) -> int:
    import shlex

    from .db import resolve_database_url
    from .launcher import rasa_env

    settings = get_settings()
    env = {**rasa_env(settings, resolve_database_url(settings)),
           "RASA_TELEMETRY_ENABLED": "false"}
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply sql/ migrations").set_defaults(fn=_cmd_migrate)
    sub.add_parser("seed", help="create the demo clinic (idempotent)").set_defaults(fn=_cmd_seed)
    tok = sub.add_parser("token", help="print a signed JWT on the last line of stdout")
    tok.add_argument("role", choices=["admin", "dentist", "patient", "service"])
    tok.add_argument("ident", nargs="?", help="dentist id, patient id or service name")
    tok.add_argument("--ttl", type=int, default=None, help="minutes until it expires")
    tok.set_defaults(fn=_cmd_token)
    add_user_parser(sub)
    prune = sub.add_parser("prune-events", help="delete old outbox rows")
    prune.add_argument("--older-than", required=True, help="age such as 7d, 12h, 30m")
    prune.set_defaults(fn=_cmd_prune)
    db = sub.add_parser("db", help="the embedded PostgreSQL")
    db.add_argument("action", choices=["start", "stop", "url"])
    db.set_defaults(fn=_cmd_db)
    up = sub.add_parser("up", help="start everything; Ctrl-C stops it all")
    up.add_argument("--no-train", action="store_true", help="do not train the Rasa model")
    up.add_argument("--skip", action="append", default=[], choices=["sync", "actions", "rasa"],
                    help="do not start this service (repeatable)")
    up.set_defaults(fn=_cmd_up)
    sub.add_parser("rasa-env", help="print the variables endpoints.yml reads, as `export` lines for a shell "
                   "(for `rasa shell`)").set_defaults(fn=_cmd_rasa_env)
    args = parser.parse_args(argv)
    from .migrate import MigrationError

    try:
        get_settings()
        return args.fn(args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except MigrationError as exc:
        print(f"migration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a clear line instead of a traceback for operator errors
        import psycopg

        from .db import DatabaseError

        if isinstance(exc, (DatabaseError, psycopg.OperationalError)):
            print(f"database error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
