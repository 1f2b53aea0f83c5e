"""AMD SEV-SNP: report layout (:mod:`.abi`), AMD certificates (:mod:`.certs`),
pinned roots (:mod:`.roots`), authenticity (:mod:`.verify`)."""

from cleanroom.attestation.snp.verify import SnpVerifier

__all__ = ["SnpVerifier"]
