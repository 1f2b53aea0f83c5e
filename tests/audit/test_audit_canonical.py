"""RFC 8785 canonical JSON: the bytes digests and signatures are computed over."""

from __future__ import annotations

import pytest

from cleanroom.audit._canonical import canonical_json, sha256_digest
from cleanroom.errors import InvalidRequest


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        # ECMAScript Number::toString, as in RFC 8785 Appendix B.
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (123456789012345680000.0, "123456789012345680000"),
        (9007199254740992.0, "9007199254740992"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e308".replace("e", "e+")),
        (0.1, "0.1"),
        (333333333.3333333, "333333333.3333333"),
        (4.5e-5, "0.000045"),
        (2.5e-7, "2.5e-7"),
    ],
)
def test_numbers(number: float, expected: str) -> None:
    assert canonical_json(number) == expected.encode()


def test_objects_sorted_by_utf16_and_compact() -> None:
    doc = {"b": [1, True, None], "a": {"\ufb01": 3, "z": "é\n\u0001", "\U0001f600": 2}}
    out = canonical_json(doc).decode("utf-8")
    # RFC 8785 §3.2.3 sorts by UTF-16 code units: U+1F600 is the surrogate pair
    # D83D DE00 and so sorts before U+FB01, although its code point is larger.
    assert out == '{"a":{"z":"é\\n\\u0001","\U0001f600":2,"\ufb01":3},"b":[1,true,null]}'


def test_digest_notation() -> None:
    assert sha256_digest(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("nan", float("nan")),
        ("infinity", float("inf")),
        ("unsafe integer", 2**53),
        ("non-string key", {1: "x"}),
        ("bytes", b"raw"),
        ("lone surrogate", "\ud800"),
        ("set", {1, 2}),
    ],
)
def test_refusals(name: str, value: object) -> None:
    with pytest.raises(InvalidRequest):
        canonical_json(value)
