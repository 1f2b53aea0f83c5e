"""The public surface of cleanroom.atls is exactly the intended names."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import cleanroom.atls
from cleanroom.server.runner import ServerThread

EXPECTED = {
    "CMW_OID",
    "MEDIA_TYPE",
    "AtlsSettings",
    "AttestationDocument",
    "AttestedTlsIdentity",
    "AttestedTransport",
    "PeerRoute",
    "ServerAttestation",
    "Upstream",
    "build_certificate",
    "certificate_document",
    "decode_cmw",
    "encode_cmw",
    "spki_der",
    "verify_document",
}


def test_exported_names() -> None:
    assert set(cleanroom.atls.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(cleanroom.atls, name) is not None


def test_the_sdk_does_not_import_the_server_side() -> None:
    code = (
        "import sys, cleanroom.client, cleanroom.atls; "
        "bad = [m for m in sys.modules if m.startswith(('cleanroom.server', 'uvicorn'))]; "
        "sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert done.returncode == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_insecure_reaches_the_health_route(server: ServerThread) -> None:
    curl = shutil.which("curl")
    assert curl is not None
    done = subprocess.run(
        [curl, "-sk", server.url + "/v1/health"], capture_output=True, timeout=30, check=False
    )
    assert b'"status":"ok"' in done.stdout
