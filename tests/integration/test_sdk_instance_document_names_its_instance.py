"""Every instance document the SDK takes must name, as a string, the instance it is about.

An ``Instance`` pins its id when it is made: the document must carry a string
``id`` (and, when an id was asked for, that one), and every later document
(``refresh``, ``grant``, ``revoke``...) must name the same id. Otherwise the
service's answer is refused with :class:`AttestationError`, whoever sent it:
an answer about another instance, or about none, is never taken for this one.
The service here is an in-process fake answering with the documents given.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cleanroom.client.instance import Instance
from cleanroom.errors import AttestationError

ID = "0123456789abcdef01234567"
DOC = {"id": ID, "name": "Loans", "owner": "olivia@example.org", "users": [], "model": {}}


class Service:
    """Answers every request with *doc*, and records the paths asked for."""

    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self.paths: list[str] = []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.paths.append(path)
        return httpx.Response(200, json=self.doc)

    def _instance_doc(self, instance_id: str) -> Any:
        return self.request("GET", f"/v1/instances/{instance_id}").json()


NOT_THIS_INSTANCE = [
    pytest.param({k: v for k, v in DOC.items() if k != "id"}, id="no id"),
    pytest.param({**DOC, "id": None}, id="a null id"),
    pytest.param({**DOC, "id": 12}, id="a number"),
    pytest.param({**DOC, "id": [ID]}, id="a list holding the id"),
    pytest.param({**DOC, "id": "f" * 24}, id="another instance"),
    pytest.param([DOC], id="not an object"),
]


@pytest.mark.parametrize("doc", NOT_THIS_INSTANCE)
def test_a_document_not_naming_the_instance_asked_for_is_refused(doc: Any) -> None:
    with pytest.raises(AttestationError, match="service answered"):
        Instance(Service(doc), doc, expected_id=ID)  # type: ignore[arg-type]


@pytest.mark.parametrize("doc", NOT_THIS_INSTANCE[:4] + NOT_THIS_INSTANCE[5:])
def test_a_document_without_a_string_id_is_refused_even_unasked(doc: Any) -> None:
    with pytest.raises(AttestationError, match="service answered"):
        Instance(Service(doc), doc)  # type: ignore[arg-type]


@pytest.mark.parametrize("doc", NOT_THIS_INSTANCE)
def test_a_later_document_about_another_instance_is_refused(doc: Any) -> None:
    service = Service(DOC)
    inst = Instance(service, DOC, expected_id=ID)  # type: ignore[arg-type]
    service.doc = doc
    with pytest.raises(AttestationError, match="instead of"):
        inst.refresh()
    with pytest.raises(AttestationError, match="instead of"):
        inst.grant("bob@bank.example")
    # The document taken first is kept.
    assert inst.id == ID
    assert inst.name == "Loans"


@pytest.mark.parametrize(
    ("address", "quoted"),
    [
        ("a/b@bank.example", "a%2Fb@bank.example"),
        ("a?b@bank.example", "a%3Fb@bank.example"),
        ("a#b@bank.example", "a%23b@bank.example"),
        ("../x@bank.example", "..%2Fx@bank.example"),
    ],
)
def test_revoking_an_address_stays_within_the_users_path(address: str, quoted: str) -> None:
    service = Service(DOC)
    inst = Instance(service, DOC, expected_id=ID)  # type: ignore[arg-type]
    inst.revoke(address)
    assert service.paths == [f"/v1/instances/{ID}/users/{quoted}"]
