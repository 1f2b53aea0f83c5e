"""An instance's declared upstreams are validated exactly as the attested
configuration will show them: two fields, a 48-byte measurement and a
``sha256:`` policy digest, normalised to lowercase hex; an instance that declares
an empty list serves no caller at all."""

from __future__ import annotations

from typing import Any

import pytest

from cleanroom.errors import AccessDenied, InvalidRequest
from cleanroom.server.upstreams import UpstreamCaller, check_upstream, parse_upstreams

MEASUREMENT = "ab" * 48
DIGEST = "sha256:" + "cd" * 32
GOOD = {"measurement": MEASUREMENT, "policy_digest": DIGEST}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        pytest.param({**GOOD, "debug": True}, "each upstream is", id="an extra field"),
        pytest.param({"measurement": MEASUREMENT}, "each upstream is", id="a missing field"),
        pytest.param([MEASUREMENT, DIGEST], "each upstream is", id="not an object"),
        pytest.param({**GOOD, "measurement": "zz" * 48}, "must be hex", id="not hex"),
        pytest.param({**GOOD, "measurement": 48}, "must be hex", id="not a string"),
        pytest.param({**GOOD, "measurement": "ab" * 47}, "48-byte", id="a 47-byte measurement"),
        pytest.param({**GOOD, "measurement": "ab" * 49}, "48-byte", id="a 49-byte measurement"),
        pytest.param({**GOOD, "measurement": ""}, "48-byte", id="an empty measurement"),
        pytest.param({**GOOD, "policy_digest": DIGEST + "00"}, "48-byte", id="a long digest"),
        pytest.param({**GOOD, "policy_digest": DIGEST[:-2]}, "48-byte", id="a short digest"),
        pytest.param({**GOOD, "policy_digest": DIGEST.upper()}, "48-byte", id="upper case"),
        pytest.param({**GOOD, "policy_digest": DIGEST + "\n"}, "48-byte", id="a newline"),
        pytest.param({**GOOD, "policy_digest": None}, "48-byte", id="no digest"),
    ],
)
def test_a_malformed_upstream_is_refused(item: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_upstreams([GOOD, item])


def test_a_declared_measurement_is_kept_as_lowercase_hex() -> None:
    declared = parse_upstreams([{**GOOD, "measurement": MEASUREMENT.upper()}])
    assert declared == [GOOD]
    caller = UpstreamCaller(MEASUREMENT, DIGEST, simulated=False, debug=False)
    check_upstream(declared, caller, service_simulated=False)


def test_an_empty_declaration_serves_no_caller() -> None:
    declared = parse_upstreams([])
    assert declared == []
    with pytest.raises(AccessDenied, match="serves only attested upstream"):
        check_upstream(declared, None, service_simulated=False)
    caller = UpstreamCaller(MEASUREMENT, DIGEST, simulated=False, debug=False)
    with pytest.raises(AccessDenied, match="not declared"):
        check_upstream(declared, caller, service_simulated=False)
