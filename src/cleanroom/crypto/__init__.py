"""Sealing recipes over standard constructions (HPKE RFC 9180, AES-256-GCM STREAM).

Imports only ``cleanroom.errors`` and well-kept libraries.
"""

from cleanroom.crypto.binding import canonical_json, config_digest, report_data
from cleanroom.crypto.keys import KeyPair, PublicKey

__all__ = ["KeyPair", "PublicKey", "canonical_json", "config_digest", "report_data"]
