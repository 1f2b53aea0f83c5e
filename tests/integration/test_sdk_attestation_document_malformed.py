"""An attestation document of the wrong shape is refused as malformed, before any use.

``validate_attestation`` reads the evidence, the configuration (a JSON object)
and the HPKE key (base64) from the service's answer. A configuration that is
not an object is refused as malformed even when genuine evidence commits to
it (the test server's simulated TEE signs evidence over exactly what is
served), so no later check ever sees it; and nothing is left to seal to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.client.instance import Instance
from cleanroom.errors import AttestationError
from cleanroom.server.runner import ServerThread

Party = Callable[[str], Client]
OWNER = "olivia@malformed.example"


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.pop(name, None)


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.update({name: value})


DOCUMENTS = [
    pytest.param(_set("config", ["instance", "keys"]), id="config a list"),
    pytest.param(_set("config", "config"), id="config a string"),
    pytest.param(_set("config", None), id="config null"),
    pytest.param(_set("config", 7), id="config a number"),
    pytest.param(_drop("config"), id="no config"),
    pytest.param(_drop("evidence"), id="no evidence"),
    pytest.param(_drop("hpke_public_key"), id="no HPKE key"),
    pytest.param(_set("hpke_public_key", "not base64!"), id="HPKE key not base64"),
    pytest.param(_set("hpke_public_key", 12), id="HPKE key a number"),
]


@pytest.fixture(scope="module")
def instance(party: Party) -> Instance:
    return party(OWNER).create_instance("Malformed", ModelFormat.ONNX)


@pytest.mark.parametrize("alter", DOCUMENTS)
def test_a_malformed_attestation_document_is_refused(
    instance: Instance,
    policy: AttestationPolicy,
    server: ServerThread,
    monkeypatch: pytest.MonkeyPatch,
    alter: Callable[[dict[str, Any]], None],
) -> None:
    inst = instance
    client = inst._client
    inst.validate_attestation(policy)
    original = client.request
    tee = server.service.tee

    def request(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = original(method, path, **kwargs)
        if not path.endswith("/attestation"):
            return response
        doc = response.json()
        alter(doc)
        if "config" in doc:
            # Genuine evidence over whatever is served as the configuration.
            nonce = bytes.fromhex(kwargs["params"]["nonce"])
            doc["evidence"] = tee.evidence(nonce, doc["config"]).to_json()
            alter(doc)
        return httpx.Response(200, json=doc)

    monkeypatch.setattr(client, "request", request)
    with pytest.raises(AttestationError, match=r"^the attestation document is malformed: "):
        inst.validate_attestation(policy)
    assert inst.attested_config is None
    with pytest.raises(AttestationError, match="not been validated"):
        inst.set_secret(Secret())
