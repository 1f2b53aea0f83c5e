"""The lending clean room's policy: the commented template, the consent manager's key pinned."""

from __future__ import annotations

import re
from importlib import resources

from cleanroom.errors import ConfigurationError

__all__ = ["PLACEHOLDER", "policy_template", "render_policy"]

#: The template's stand-in for the key, as a Rego string. Not a key, so an
#: unrendered template verifies no consent and admits no prediction.
PLACEHOLDER = '"@CONSENT_MANAGER_PUBLIC_KEY@"'

_PEM_PUBLIC_KEY = re.compile(
    r"-----BEGIN PUBLIC KEY-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END PUBLIC KEY-----\n?"
)


def policy_template() -> str:
    """The Rego module with the placeholder, as shipped (``policy.rego`` next to this file)."""
    return resources.files(__package__).joinpath("policy.rego").read_text(encoding="utf-8")


def render_policy(consent_manager_public_key_pem: str) -> str:
    """The policy with *consent_manager_public_key_pem* pinned as a Rego raw string.

    Anyone holding the consent manager's public key renders the same text, so
    the bank recomputes the policy digest it expects and compares it with the
    attested one before sending data.
    """
    pem = consent_manager_public_key_pem
    if not _PEM_PUBLIC_KEY.fullmatch(pem):
        raise ConfigurationError("the consent manager key is not a SubjectPublicKeyInfo PEM")
    template = policy_template()
    if template.count(PLACEHOLDER) != 1:
        raise ConfigurationError("the policy template must hold the key placeholder once")
    # A raw string (backticks) keeps the PEM's newlines; the pattern above
    # admits no backtick, so the key cannot end the string early.
    return template.replace(PLACEHOLDER, "`" + pem.rstrip("\n") + "\n`")
