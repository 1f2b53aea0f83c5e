"""A KDS certificate cache directory others can write never feeds the evidence
anything but certificates: no link is followed, no file but a certificate file is
used, and a link in the way is replaced, not written through."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.fetch import HttpResponse, KdsFetcher
from cleanroom.attestation.snp import abi
from cleanroom.errors import ServiceUnavailable

MS = (
    Path(__file__).resolve().parents[1]
    / "assets"
    / "attestation"
    / "snp"
    / "ms-tav-milan-genoa-turin"
)
REPORT = (MS / "genoa_attestation_report.bin").read_bytes()
VCEK = split_certificates((MS / "genoa_vcek.pem").read_bytes())[0]
CHAIN = (MS / "genoa_ask.pem").read_bytes() + (MS / "genoa_ark.pem").read_bytes()
SECRET = b"a file of the clean room's that the host must never read out"


class Kds:
    """A fake KDS that counts its requests."""

    def __init__(self) -> None:
        probe = KdsFetcher(lambda url: HttpResponse(404, b"", {}))
        self.vcek_url = probe.vcek_url(abi.parse_report(REPORT), "Genoa")
        self.chain_url = probe.chain_url("Genoa")
        self.requests: list[str] = []

    def __call__(self, url: str) -> HttpResponse:
        self.requests.append(url)
        pages = {self.vcek_url: VCEK, self.chain_url: CHAIN}
        return HttpResponse(200, pages[url], {}) if url in pages else HttpResponse(404, b"", {})


def _entry(cache: Path, url: str) -> Path:
    return cache / hashlib.sha256(url.encode()).hexdigest()


def _link_to_secret(tmp_path: Path) -> Callable[[Path], None]:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    return lambda entry: entry.symlink_to(secret)


def _not_a_certificate(entry: Path) -> None:
    entry.write_bytes(SECRET)


def _a_fifo(entry: Path) -> None:
    os.mkfifo(entry)  # opening it must not hang the fetcher


def _too_large(entry: Path) -> None:
    entry.write_bytes(VCEK + b"\0" * (2 * 1024 * 1024))


def _two_certificates_for_one(entry: Path) -> None:
    entry.write_bytes(VCEK + VCEK)


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param("link", id="a link to another file"),
        pytest.param(_not_a_certificate, id="a file that is not a certificate"),
        pytest.param(_a_fifo, id="a named pipe"),
        pytest.param(_too_large, id="an oversized file"),
        pytest.param(_two_certificates_for_one, id="more certificates than the URL serves"),
    ],
)
def test_a_planted_cache_entry_is_never_used(
    tmp_path: Path, plant: str | Callable[[Path], None]
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    kds = Kds()
    planting = _link_to_secret(tmp_path) if plant == "link" else plant
    assert callable(planting)
    planting(_entry(cache, kds.vcek_url))
    certificates = KdsFetcher(kds, cache_dir=cache).certificates(REPORT)
    assert certificates[0] == VCEK
    assert all(SECRET not in c for c in certificates)
    assert kds.vcek_url in kds.requests  # fetched, not read from the plant


def test_a_dangling_link_is_replaced_not_written_through(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    kds = Kds()
    target = tmp_path / "elsewhere"
    _entry(cache, kds.vcek_url).symlink_to(target)
    KdsFetcher(kds, cache_dir=cache).certificates(REPORT)
    assert not target.exists()
    entry = _entry(cache, kds.vcek_url)
    assert not entry.is_symlink()
    assert entry.read_bytes() == VCEK


def test_a_genuine_cache_entry_spares_the_network(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    kds = Kds()
    first = KdsFetcher(kds, cache_dir=cache).certificates(REPORT)
    assert len(kds.requests) == 2
    again = KdsFetcher(kds, cache_dir=cache).certificates(REPORT)
    assert again == first
    assert len(kds.requests) == 2


def test_without_a_directory_certificates_are_kept_in_memory() -> None:
    kds = Kds()
    fetcher = KdsFetcher(kds)
    assert fetcher.certificates(REPORT) == fetcher.certificates(REPORT)
    assert len(kds.requests) == 2


def test_kds_answering_something_else_than_certificates_is_refused(tmp_path: Path) -> None:
    def wrong(url: str) -> HttpResponse:
        return HttpResponse(200, SECRET, {})

    with pytest.raises(ServiceUnavailable, match="did not answer 1 certificate"):
        KdsFetcher(wrong, cache_dir=tmp_path).certificates(REPORT)
    assert list(tmp_path.iterdir()) == []  # and nothing of it was kept
