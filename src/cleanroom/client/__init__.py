"""The Python SDK. Imports crypto, attestation, wire and errors; never the server."""

from cleanroom.client.client import Client
from cleanroom.client.instance import Instance
from cleanroom.client.secret import Secret

__all__ = ["Client", "Instance", "Secret"]
