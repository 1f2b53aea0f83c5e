"""REPORT_DATA commits to each of its inputs, unambiguously."""

from __future__ import annotations

from cleanroom.crypto.binding import canonical_json, config_digest, report_data


def test_report_data_is_64_bytes_and_changes_with_every_input() -> None:
    base = {"hpke_public_key": b"k" * 32, "nonce": b"n" * 32, "config_digest": b"c" * 48}
    value = report_data(**base)
    assert len(value) == 64
    for name in base:
        changed = dict(base, **{name: b"x" + base[name][1:]})
        assert report_data(**changed) != value


def test_length_prefixes_prevent_boundary_shifts() -> None:
    a = report_data(hpke_public_key=b"ab", nonce=b"c", config_digest=b"")
    b = report_data(hpke_public_key=b"a", nonce=b"bc", config_digest=b"")
    assert a != b


def test_config_digest_ignores_key_order_but_not_values() -> None:
    assert config_digest({"a": 1, "b": [1, 2]}) == config_digest({"b": [1, 2], "a": 1})
    assert config_digest({"a": 1}) != config_digest({"a": 2})
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
