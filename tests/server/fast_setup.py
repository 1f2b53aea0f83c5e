"""Building blocks for unit tests of the gate and of accounts, without a service."""

from __future__ import annotations

from pathlib import Path

from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.server.accounts import Accounts
from cleanroom.server.gate import Gate
from cleanroom.server.store import InstanceRecord, Store

USER = "user@example.com"
OWNER = "owner@example.com"


def instance_record(
    policy: str,
    *,
    model_digest: str | None = None,
    users: tuple[str, ...] = (USER,),
    instance_id: str = "inst-1",
) -> InstanceRecord:
    """An instance's record as the store would give it, with *policy* as its policy."""
    return InstanceRecord(
        id=instance_id,
        name="n",
        owner=OWNER,
        format="onnx",
        created=0,
        users=users,
        model_digest=model_digest,
        model_size=None,
        model_signature=None,
        options={"policy": policy},
    )


def new_gate(directory: Path) -> Gate:
    """A gate with its own decision log in *directory* and a fresh signing key."""
    return Gate(directory / "log.db", ed25519.Ed25519PrivateKey.generate())


def fast_hasher() -> PasswordHasher:
    """Argon2id at its cheapest: the tests check the logic, not the cost."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def new_accounts(directory: Path, *, token_ttl_s: int = 60) -> Accounts:
    """Accounts over a fresh store in *directory*, open registration, a fast hasher."""
    return Accounts(
        Store(directory / "db.sqlite3"),
        open_registration=True,
        token_ttl_s=token_ttl_s,
        hasher=fast_hasher(),
    )
