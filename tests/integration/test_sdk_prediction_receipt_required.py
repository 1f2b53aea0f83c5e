"""Every prediction's outputs are returned only with a receipt the SDK could check.

The clean room answers a prediction with the sealed outputs and, in a header,
a receipt: the decision's log entry, a signed checkpoint and an inclusion
proof. A service that drops the receipt, sends one that is not a JSON object,
or whose attested configuration names no receipt-signing key, would let a
prediction go unrecorded: the SDK refuses the outputs with
:class:`LogIntegrityError`, and keeps the receipt of the last prediction it
did check.

Answers are altered in the client's request layer.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from tests.models import single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.client.instance import RECEIPT_HEADER, Instance
from cleanroom.errors import LogIntegrityError

Party = Callable[[str], Client]
OWNER = "olivia@receipts.example"
BOB = "bob@receipts.example"
X = np.ones((1, 3), np.float32)
Request = Callable[..., httpx.Response]
Answer = Callable[[Request, str, str, dict[str, Any]], httpx.Response]


def _intercept(
    monkeypatch: pytest.MonkeyPatch, client: Client, suffix: str, answer: Answer
) -> None:
    """Answer *client*'s requests to paths ending in *suffix* with *answer*."""
    original = client.request

    def request(method: str, path: str, **kwargs: Any) -> httpx.Response:
        if path.endswith(suffix):
            return answer(original, method, path, kwargs)
        return original(method, path, **kwargs)

    monkeypatch.setattr(client, "request", request)


@pytest.fixture(scope="module")
def ready(party: Party, policy: AttestationPolicy) -> Instance:
    """Bob's view of an instance with a model, attested and with a secret set."""
    owner = party(OWNER).create_instance("Receipts", ModelFormat.ONNX, [BOB])
    owner.validate_attestation(policy)
    owner.set_secret(Secret())
    owner.upload_model(single_input_model())
    inst = party(BOB).get_instance(owner.id)
    inst.validate_attestation(policy)
    inst.set_secret(Secret())
    return inst


def _with_receipt_header(value: str | None) -> Answer:
    def answer(original: Request, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        response = original(method, path, **kwargs)
        headers = {k: v for k, v in response.headers.items() if k != RECEIPT_HEADER}
        if value is not None:
            headers[RECEIPT_HEADER] = value
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=response.content,
            request=response.request,
        )

    return answer


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="no receipt header"),
        pytest.param("", id="an empty header"),
        pytest.param("not base64 at all!", id="not base64"),
        pytest.param(_b64("not json"), id="not JSON"),
        pytest.param(_b64("[1, 2]"), id="a JSON list"),
        pytest.param(_b64('"receipt"'), id="a JSON string"),
        pytest.param(_b64("null"), id="JSON null"),
    ],
)
def test_a_prediction_without_a_receipt_is_refused(
    ready: Instance, monkeypatch: pytest.MonkeyPatch, header: str | None
) -> None:
    inst = ready
    inst.predict(X)
    genuine = inst.last_receipt
    assert genuine is not None
    _intercept(monkeypatch, inst._client, "/predict", _with_receipt_header(header))
    with pytest.raises(
        LogIntegrityError, match=r"^the clean room returned no receipt for this prediction$"
    ):
        inst.predict(X)
    assert inst.last_receipt is genuine


@pytest.mark.parametrize(
    "signing",
    [
        pytest.param(lambda keys: keys.pop("signing"), id="no signing key"),
        pytest.param(lambda keys: keys.update(signing=None), id="a null signing key"),
        pytest.param(lambda keys: keys.update(signing=["k"]), id="a list as signing key"),
    ],
)
def test_a_configuration_naming_no_receipt_signing_key_is_refused_at_prediction(
    ready: Instance, monkeypatch: pytest.MonkeyPatch, signing: Callable[[dict[str, Any]], None]
) -> None:
    inst = ready
    inst.predict(X)
    genuine = inst.last_receipt
    # What the SDK holds as attested, less the signing key; the configuration
    # digest it sends stays the genuine one, so the clean room serves the prediction.
    attested = inst._require_attested()
    config = copy.deepcopy(dict(attested.config))
    signing(config["keys"])
    monkeypatch.setattr(inst, "_attested", dataclasses.replace(attested, config=config))
    with pytest.raises(
        LogIntegrityError, match=r"^the attested configuration names no receipt-signing key$"
    ):
        inst.predict(X)
    assert inst.last_receipt is genuine
