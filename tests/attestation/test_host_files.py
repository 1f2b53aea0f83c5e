"""Files the host places in the data directory (certificates, DCAP collateral) are
read only as regular files, never through a link: a link could point at what only
the clean room may read, and it would go out in every evidence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cleanroom.attestation.host_files import read_regular_file
from cleanroom.attestation.providers import _cached_collateral as cached_collateral
from cleanroom.attestation.providers import cached_certificates
from cleanroom.errors import ConfigurationError, EvidenceFormatError

MS = (
    Path(__file__).resolve().parents[1]
    / "assets"
    / "attestation"
    / "snp"
    / "ms-tav-milan-genoa-turin"
)
SECRET = b"0\x82\x01\x00 the clean room's own memory, shaped like DER"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    return path


def test_regular_files_are_read_and_nothing_else(tmp_path: Path, secret: Path) -> None:
    assert read_regular_file(secret, 1024) == SECRET
    link = tmp_path / "link"
    link.symlink_to(secret)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert read_regular_file(link, 1024) is None
    assert read_regular_file(fifo, 1024) is None  # and does not wait for a writer
    assert read_regular_file(tmp_path, 1024) is None
    assert read_regular_file(tmp_path / "absent", 1024) is None
    assert read_regular_file(secret, len(SECRET) - 1) is None


def _certificates_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data" / "tee-certificates"
    directory.mkdir(parents=True)
    (directory / "genoa.pem").write_bytes(
        (MS / "genoa_vcek.pem").read_bytes() + (MS / "genoa_ask.pem").read_bytes()
    )
    return directory


def test_certificate_files_are_read(tmp_path: Path) -> None:
    _certificates_dir(tmp_path)
    assert len(cached_certificates(tmp_path / "data")) == 2


@pytest.mark.parametrize("kind", ["link", "fifo", "not a certificate"])
def test_anything_but_a_certificate_file_is_refused(
    tmp_path: Path, secret: Path, kind: str
) -> None:
    entry = _certificates_dir(tmp_path) / "zz.pem"
    if kind == "link":
        entry.symlink_to(secret)
    elif kind == "fifo":
        os.mkfifo(entry)
    else:
        entry.write_bytes(SECRET)
    with pytest.raises((ConfigurationError, EvidenceFormatError)):
        cached_certificates(tmp_path / "data")


def test_collateral_through_a_link_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    real = tmp_path / "elsewhere.json"
    real.write_text(json.dumps({"tcb_info": "x"}))
    (data / "tdx-collateral.json").symlink_to(real)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        cached_collateral(data)
    (data / "tdx-collateral.json").unlink()
    assert cached_collateral(data) is None
    (data / "tdx-collateral.json").write_text(json.dumps({"tcb_info": "x"}))
    assert cached_collateral(data) == {"tcb_info": "x"}
