"""Party keys: cached for the request path, never served after a change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cleanroom.crypto.keys import KeyPair
from cleanroom.server.store import Store

INSTANCE = "i" * 24
OWNER = "alice@lender.example"
BOB = "bob@bank.example"
CAROL = "carol@bank.example"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "db.sqlite3")
    store.create_instance(INSTANCE, "scoring", OWNER, "onnx", [BOB, CAROL], {})
    return store


def _registered(store: Store, email: str) -> KeyPair:
    keys = KeyPair()
    store.add_party_key(INSTANCE, email, keys.public.key_id, keys.public.raw)
    return keys


def test_a_registered_key_is_found_again_and_again(store: Store) -> None:
    keys = _registered(store, BOB)
    expected = (BOB, keys.public.raw)
    assert [store.party_key(INSTANCE, keys.public.key_id) for _ in range(3)] == [expected] * 3


@pytest.mark.parametrize(
    ("change", "expected_owner"),
    [
        (lambda store, _keys: store.revoke(INSTANCE, BOB), None),
        (lambda store, _keys: store.delete_instance(INSTANCE), None),
        # A key id never moves to another party: tests/server/test_party_key_binding.py.
    ],
    ids=["revoked", "instance deleted"],
)
def test_a_change_takes_effect_on_the_next_lookup(
    store: Store, change: Callable[[Store, KeyPair], None], expected_owner: str | None
) -> None:
    keys = _registered(store, BOB)
    assert store.party_key(INSTANCE, keys.public.key_id) == (BOB, keys.public.raw)  # cached
    change(store, keys)
    found = store.party_key(INSTANCE, keys.public.key_id)
    assert (found[0] if found else None) == expected_owner


def test_unknown_key_ids_are_not_found_and_not_remembered(store: Store) -> None:
    _registered(store, BOB)
    for _ in range(100):
        assert store.party_key(INSTANCE, KeyPair().public.key_id) is None
    assert store.party_key("j" * 24, KeyPair().public.key_id) is None
    assert sum(len(keys) for keys in store._party_keys.values()) <= 1
    late = _registered(store, CAROL)  # registered after a miss: found at once
    assert store.party_key(INSTANCE, late.public.key_id) == (CAROL, late.public.raw)
