"""``cleanroom user add EMAIL``: create an account (for closed registration)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from cleanroom.cli import defaults
from cleanroom.errors import InvalidRequest


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("user", help="manage accounts in a data directory")
    actions = parser.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="create an account; the password is read from stdin or prompted for",
    )
    add.add_argument("email")
    add.add_argument("--data-dir", type=Path, default=defaults.data_dir())
    add.set_defaults(handler=run_add)


def _password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise InvalidRequest("the two passwords differ")
    return first


def run_add(args: argparse.Namespace) -> int:
    from cleanroom.server.accounts import Accounts
    from cleanroom.server.settings import ServerSettings
    from cleanroom.server.store import Store

    store = Store(ServerSettings(data_dir=args.data_dir).db_path)
    try:
        email = Accounts(store, open_registration=False, token_ttl_s=0).add_user(
            args.email, _password()
        )
    finally:
        store.close()
    print(f"account {email} created")
    return 0
