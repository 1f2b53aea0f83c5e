"""The service's own bounds on what a caller sends, each refused exactly at its edge:
an instance's name, the attestation nonce, a page of the decision log, and the
revocation of an owner however its address is written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cleanroom.errors import Error, InvalidRequest, PolicyError
from cleanroom.server.service import LOG_PAGE_LIMIT, NONCE_MAX, NONCE_MIN, CleanRoomService
from cleanroom.server.settings import ServerSettings

OWNER = "owner@example.org"
USER = "user@example.org"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CleanRoomService]:
    svc = CleanRoomService(ServerSettings(data_dir=tmp_path_factory.mktemp("bounds")))
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def instance_id(service: CleanRoomService) -> str:
    return service.create_instance(OWNER, "bounds", "onnx", [USER]).id


@pytest.mark.parametrize(
    ("name", "accepted"),
    [("a", True), ("n" * 200, True), ("n" * 201, False), ("   ", False), ("", False)],
)
def test_an_instance_name_is_1_to_200_characters(
    service: CleanRoomService, name: str, accepted: bool
) -> None:
    if accepted:
        assert service.create_instance(OWNER, name, "onnx", []).name == name
    else:
        with pytest.raises(InvalidRequest, match="1 to 200 characters"):
            service.create_instance(OWNER, name, "onnx", [])


@pytest.mark.parametrize(
    ("nbytes", "accepted"),
    [
        (NONCE_MIN - 1, False),
        (NONCE_MIN, True),
        (NONCE_MAX, True),
        (NONCE_MAX + 1, False),
    ],
)
def test_an_attestation_nonce_is_16_to_64_bytes(
    service: CleanRoomService, instance_id: str, nbytes: int, accepted: bool
) -> None:
    nonce = "ab" * nbytes
    if accepted:
        assert service.attestation(USER, instance_id, nonce)["nonce"] == nonce
    else:
        with pytest.raises(InvalidRequest, match="the nonce must be 16 to 64 bytes"):
            service.attestation(USER, instance_id, nonce)


@pytest.mark.parametrize(
    ("page", "accepted"),
    [
        ({"limit": 1}, True),
        ({"limit": LOG_PAGE_LIMIT}, True),
        ({"after": -1}, True),
        ({"limit": 0}, False),
        ({"limit": LOG_PAGE_LIMIT + 1}, False),
        ({"after": -2}, False),
    ],
)
def test_a_log_page_holds_1_to_the_page_limit_entries_after_seq_minus_1_or_more(
    service: CleanRoomService, instance_id: str, page: dict[str, Any], accepted: bool
) -> None:
    if accepted:
        assert service.usage_log(OWNER, instance_id, **page)["entries"] == []
    else:
        with pytest.raises(InvalidRequest, match="a log page holds"):
            service.usage_log(OWNER, instance_id, **page)


def test_a_data_owner_reads_only_its_own_entries_of_the_log(
    service: CleanRoomService, instance_id: str
) -> None:
    digest = service.gate.bundle(service.store.instance(instance_id)).digest
    request = "sha256:" + "0" * 64
    for party in (OWNER, USER, "other@example.org"):
        service.gate.log.append(
            instance_id, "predict", party, True, None, digest, None, request, None
        )

    def parties(email: str) -> list[str]:
        return [e["party"] for e in service.usage_log(email, instance_id)["entries"]]

    assert parties(USER) == [USER]
    assert parties(OWNER) == [OWNER, USER, "other@example.org"]


@pytest.mark.parametrize("written", [OWNER, OWNER.upper(), f"  {OWNER}  "])
def test_the_owner_cannot_be_revoked_however_its_address_is_written(
    service: CleanRoomService, instance_id: str, written: str
) -> None:
    with pytest.raises(InvalidRequest, match="the owner cannot be revoked"):
        service.revoke(OWNER, instance_id, written)
    assert service.store.instance(instance_id).owner == OWNER


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        pytest.param({"policy": "package cleanroom\nallow if {"}, PolicyError, None, id="a policy"),
        pytest.param({"limits": {"workers": 0}}, InvalidRequest, "workers", id="limits"),
        pytest.param(
            {"upstreams": [{"measurement": "ab"}]}, InvalidRequest, "upstream", id="upstreams"
        ),
    ],
)
def test_an_instance_is_not_created_with_options_that_cannot_apply(
    service: CleanRoomService, options: dict[str, Any], error: type[Error], message: str
) -> None:
    before = len(service.list_instances(OWNER))
    with pytest.raises(error, match=message):
        service.create_instance(OWNER, "refused", "onnx", [], **options)
    assert len(service.list_instances(OWNER)) == before
