"""A party's own key pair for one clean-room instance."""

from __future__ import annotations

from cleanroom.crypto.keys import KeyPair, PublicKey

__all__ = ["Secret"]


class Secret:
    """An X25519 key pair generated locally; the private half never leaves this process.

    The public half is registered with the instance by ``Instance.set_secret``.
    Requests are sealed with it in HPKE Auth mode, so the clean room knows
    which registered party sealed each request; responses are sealed back so
    that only the holder of this secret can open them.
    """

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys = KeyPair()

    @property
    def public_key(self) -> PublicKey:
        return self._keys.public

    @property
    def key_pair(self) -> KeyPair:
        return self._keys

    def __repr__(self) -> str:
        return f"Secret(key_id={self._keys.public.key_id.hex()[:16]}…)"
