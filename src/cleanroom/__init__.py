"""Confidential Clean Room: confidential machine-learning inference in a TEE.

The public SDK::

    from cleanroom import Client, Secret, ModelFormat, AttestationPolicy
"""

from cleanroom import errors
from cleanroom.attestation import AttestationPolicy
from cleanroom.client import Client, Instance, Secret
from cleanroom.wire.formats import ModelFormat

__all__ = ["AttestationPolicy", "Client", "Instance", "ModelFormat", "Secret", "errors"]
__version__ = "0.1.0"
