"""A party key id belongs to the party that first registered it on an instance.

Public keys are not secret. Before this rule, any party of an instance could
``PUT /v1/instances/{id}/keys`` with another party's public key and the key id
became theirs: the victim's requests were refused from then on, and a sealed
request of the victim's that the attacker had captured (the operator, who can
see and hold back traffic, is untrusted) would be accepted and logged as the
attacker's. Now a key id, once registered by a party on an instance, stays
bound to that party for the instance's life; anyone else is refused with
:class:`Conflict` (409), whose message does not name the holder.

After a revocation: the revoked party's key rows are dropped (its requests are
refused at once) but the binding is kept, so the key id is *not* free for the
other parties. The attacker could not use the key (only the holder of the
private key can seal with it, and responses are sealed to the sender's HPKE
context, so the attacker cannot read them either), but it could still gain
attribution: a request the victim sealed shortly before being revoked, held
back by a colluding operator and replayed within the replay window under the
attacker's session, would open under the attacker's binding and be logged and
policy-checked as the attacker's. Keeping the binding costs one small row per
key and closes that; the revoked party, granted again, may register the same
key again.

Registering a key before its holder does is closed at the API, which needs
a proof of possession (``tests/integration/test_key_proof.py``); here the
store's own rule is checked, whoever registers.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cleanroom.crypto.keys import KeyPair
from cleanroom.errors import Conflict, Error
from cleanroom.server.store import Store

INSTANCE = "i" * 24
OTHER_INSTANCE = "j" * 24
OWNER = "alice@lender.example"
BOB = "bob@bank.example"
EVE = "eve@bank.example"

# Two key pairs per test, by name. A step is (who, action, key name, instance): "who"
# registers the key, or is revoked from or granted the instance (by its owner).
KEYS = ("bob's key", "eve's key")
Step = tuple[str, str, str, str]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "db.sqlite3")
    store.create_instance(INSTANCE, "scoring", OWNER, "onnx", [BOB, EVE], {})
    store.create_instance(OTHER_INSTANCE, "other", OWNER, "onnx", [BOB, EVE], {})
    return store


def _run(store: Store, keys: dict[str, KeyPair], step: Step) -> None:
    who, action, key, instance = step
    if action == "register":
        public = keys[key].public
        store.add_party_key(instance, who, public.key_id, public.raw)
    elif action == "revoke":
        store.revoke(instance, who)
    elif action == "grant":
        store.grant(instance, who)
    else:  # pragma: no cover - a mistake in the table
        raise AssertionError(action)


def _reg(who: str, key: str, instance: str = INSTANCE) -> Step:
    return (who, "register", key, instance)


BOB_KEY, EVE_KEY = KEYS

# (steps done first, the step under test, its outcome, who owns bob's key on INSTANCE after)
SCENARIOS: list[tuple[str, list[Step], Step, type[Error] | None, str | None]] = [
    ("bob registers his key", [], _reg(BOB, BOB_KEY), None, BOB),
    ("bob re-registers his key: fine", [_reg(BOB, BOB_KEY)], _reg(BOB, BOB_KEY), None, BOB),
    ("bob's key cannot be taken by eve", [_reg(BOB, BOB_KEY)], _reg(EVE, BOB_KEY), Conflict, BOB),
    ("nor by the owner", [_reg(BOB, BOB_KEY)], _reg(OWNER, BOB_KEY), Conflict, BOB),
    (
        "eve may register her own key next to bob's",
        [_reg(BOB, BOB_KEY)],
        _reg(EVE, EVE_KEY),
        None,
        BOB,
    ),
    (
        "after bob is revoked, eve still cannot take his key",
        [_reg(BOB, BOB_KEY), (BOB, "revoke", "", INSTANCE)],
        _reg(EVE, BOB_KEY),
        Conflict,
        None,
    ),
    (
        "bob, revoked and granted again, may register the same key again",
        [_reg(BOB, BOB_KEY), (BOB, "revoke", "", INSTANCE), (BOB, "grant", "", INSTANCE)],
        _reg(BOB, BOB_KEY),
        None,
        BOB,
    ),
    (
        "a key registered first by eve is hers: bob is told to use another",
        [_reg(EVE, BOB_KEY)],
        _reg(BOB, BOB_KEY),
        Conflict,
        EVE,
    ),
    (
        "bindings are per instance: bob's key on another instance is not taken here",
        [_reg(BOB, BOB_KEY, OTHER_INSTANCE)],
        _reg(EVE, BOB_KEY),
        None,
        EVE,
    ),
]


@pytest.mark.parametrize(
    ("before", "step", "error", "holder"),
    [pytest.param(*row[1:], id=row[0]) for row in SCENARIOS],
)
def test_who_may_register_which_key(
    store: Store,
    before: list[Step],
    step: Step,
    error: type[Error] | None,
    holder: str | None,
) -> None:
    keys = {name: KeyPair() for name in KEYS}
    for done in before:
        _run(store, keys, done)
    if error is None:
        _run(store, keys, step)
    else:
        with pytest.raises(error) as refused:
            _run(store, keys, step)
        assert refused.value.status == 409
        assert "another party" in refused.value.message
        assert refused.value.remedy == "generate a new key pair for this instance and register that"
        # The holder is not named, whoever asks.
        text = refused.value.diagnostics()
        assert all(email not in text for email in (OWNER, BOB, EVE))
    found = store.party_key(INSTANCE, keys[BOB_KEY].public.key_id)
    assert (found[0] if found else None) == holder
    if found is not None:
        assert found[1] == keys[BOB_KEY].public.raw


def test_a_refused_registration_changes_nothing(store: Store) -> None:
    bob = KeyPair()
    store.add_party_key(INSTANCE, BOB, bob.public.key_id, bob.public.raw)
    rows = "SELECT instance_id, email, key_id, public_key, created FROM party_keys ORDER BY key_id"
    before = store.connection.execute(rows).fetchall()
    with pytest.raises(Conflict):
        store.add_party_key(INSTANCE, EVE, bob.public.key_id, bob.public.raw)
    assert store.connection.execute(rows).fetchall() == before
    assert store.party_key(INSTANCE, bob.public.key_id) == (BOB, bob.public.raw)


def test_registering_again_drops_the_cached_keys(store: Store) -> None:
    bob = KeyPair()
    store.add_party_key(INSTANCE, BOB, bob.public.key_id, bob.public.raw)
    assert store.party_key(INSTANCE, bob.public.key_id) == (BOB, bob.public.raw)
    assert INSTANCE in store._party_keys  # cached
    store.add_party_key(INSTANCE, BOB, bob.public.key_id, bob.public.raw)
    assert INSTANCE not in store._party_keys
    assert store.party_key(INSTANCE, bob.public.key_id) == (BOB, bob.public.raw)


def test_racing_registrations_of_one_key_bind_it_once(store: Store) -> None:
    key = KeyPair().public
    parties = [BOB, EVE] * 4
    start = threading.Barrier(len(parties))
    outcomes: dict[int, str] = {}

    def register(index: int, email: str) -> None:
        start.wait()
        try:
            store.add_party_key(INSTANCE, email, key.key_id, key.raw)
        except Conflict:
            outcomes[index] = "refused"
        else:
            outcomes[index] = email

    threads = [
        threading.Thread(target=register, args=(i, email)) for i, email in enumerate(parties)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = store.party_key(INSTANCE, key.key_id)
    assert found is not None
    winner = found[0]
    # Every registration by the winner succeeded, every other one was refused.
    assert sorted(outcomes.values()) == sorted(
        winner if email == winner else "refused" for email in parties
    )


def test_keys_registered_before_the_bindings_table_are_bound(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    store.create_instance(INSTANCE, "scoring", OWNER, "onnx", [BOB, EVE], {})
    bob = KeyPair()
    store.add_party_key(INSTANCE, BOB, bob.public.key_id, bob.public.raw)
    store.connection.execute("DROP TABLE party_key_bindings")  # as an older version left it
    store.close()
    reopened = Store(path)
    with pytest.raises(Conflict):
        reopened.add_party_key(INSTANCE, EVE, bob.public.key_id, bob.public.raw)
    assert reopened.party_key(INSTANCE, bob.public.key_id) == (BOB, bob.public.raw)
