"""``python -m bot user add|passwd|disable``: the clinic's staff accounts (bot.accounts).

Passwords are read with ``getpass`` (asked twice) or, with ``--password-stdin``, as the first
line of standard input (for scripts: ``printf '%s\\n' "$PW" | python -m bot user add ...``).
An operator's mistake is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from .settings import get_settings

HELP = """staff accounts for the /admin and /dentist pages (docs/security.md, "Staff accounts")

  user add EMAIL --role admin [--name "Full Name"]
  user add EMAIL --role dentist --dentist-id N [--name "Dr Full Name"]
  user passwd EMAIL          a new password; every open session of that person ends
  user disable EMAIL         no more sign-ins; every open session ends

The first admin of a new installation:  python -m bot user add you@clinic.example --role admin
"""


class _Refused(Exception):
    """A password that was not given twice alike (or not at all)."""


def _password(args, settings) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise _Refused("no password on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass(f"New password (at least {settings.staff_password_min_chars} characters): ")
    if getpass.getpass("The same password again: ") != first:
        raise _Refused("the two passwords differ; nothing was changed")
    return first


def _run(args) -> int:
    from .accounts import AccountError, add_user, disable_user, set_password
    from .db import conninfo, get_engine
    from .migrate import migrate

    settings = get_settings()
    try:
        migrate(conninfo())  # a new installation's first admin needs the tables
        engine = get_engine()
        if args.action == "add":
            account = add_user(engine, settings, args.email, args.role, _password(args, settings),
                               dentist_id=args.dentist_id, full_name=args.name)
            print(f"added {account.role} {account.email} ({account.full_name}), account id {account.id}")
        elif args.action == "passwd":
            ended = set_password(engine, settings, args.email, _password(args, settings))
            print(f"new password set for {args.email.strip()}; {ended} open session(s) ended")
        else:
            ended = disable_user(engine, args.email)
            print(f"disabled {args.email.strip()}; {ended} open session(s) ended")
    except (AccountError, _Refused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, EOFError):
        print("error: cancelled; nothing was changed", file=sys.stderr)
        return 2
    return 0


def add_parser(sub) -> None:
    """The ``user`` command and its three actions, on ``python -m bot``'s subparsers."""
    user = sub.add_parser("user", help="staff accounts: add, passwd, disable", description=HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a staff account (asks for its password)")
    add.add_argument("email")
    add.add_argument("--role", required=True, choices=["admin", "dentist"])
    add.add_argument("--dentist-id", type=int, default=None, help="the dentist this account is (role dentist)")
    add.add_argument("--name", default=None, help="shown in the page header (default: the dentist's name, "
                                                  "or the email)")
    passwd = actions.add_parser("passwd", help="set a new password; ends that person's sessions")
    passwd.add_argument("email")
    for action in (add, passwd):
        action.add_argument("--password-stdin", action="store_true",
                            help="read the password from the first line of standard input")
    disable = actions.add_parser("disable", help="stop an account signing in; ends its sessions")
    disable.add_argument("email")
    user.set_defaults(fn=_run)
