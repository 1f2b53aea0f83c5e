"""``cleanroom user add EMAIL``: create an account (for closed registration).

The store's rows are authenticated under a key derived from the TEE's sealing
key (``Tee.store_integrity_key``), so the account must be written by this
code on the clean room's TEE: run it where ``cleanroom serve`` runs, with the
same ``--tee`` and ``--data-dir``. An account written otherwise does not sign in.
"""

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
    defaults.add_tee_argument(
        add,
        "the TEE the clean room runs on (as for `cleanroom serve`): the account is "
        "authenticated under a key only it derives",
    )
    add.set_defaults(handler=run_add)


def _password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise InvalidRequest("the two passwords differ")
    return first


def run_add(args: argparse.Namespace) -> int:
    from cleanroom.server.accounts import Accounts, check_new_password, normalise_email
    from cleanroom.server.settings import ServerSettings
    from cleanroom.server.store import Store
    from cleanroom.server.tee import Tee

    email = normalise_email(args.email)
    password = _password()
    check_new_password(password)  # refused before the TEE is opened
    tee = Tee(args.tee, args.data_dir)
    store = Store(
        ServerSettings(data_dir=args.data_dir).db_path, integrity_key=tee.store_integrity_key
    )
    try:
        Accounts(store, open_registration=False, token_ttl_s=0).add_user(email, password)
    finally:
        store.close()
    print(f"account {email} created")
    return 0
