"""Accounts and sessions: Argon2id password hashes, opaque expiring tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cleanroom.errors import AccessDenied, AuthenticationFailed, InvalidRequest
from cleanroom.server.store import Store

__all__ = ["Accounts", "Session", "normalise_email"]

MIN_PASSWORD_LENGTH = 12
_MAX_KNOWN_SESSIONS = 10_000
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
# A fixed hash to verify against when the account does not exist, so that an
# unknown email and a wrong password take the same time.
_DUMMY_PASSWORD = "cleanroom-dummy-password"  # noqa: S105


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidRequest(f"{email!r} is not an email address")
    return email


@dataclass(frozen=True)
class Session:
    token: str
    email: str
    expires: int


class Accounts:
    def __init__(self, store: Store, *, open_registration: bool, token_ttl_s: int) -> None:
        self._store = store
        self._open_registration = open_registration
        self._ttl = token_ttl_s
        # argon2-cffi's defaults are Argon2id with RFC 9106's second recommended profile.
        self._hasher = PasswordHasher()
        self._dummy_hash = self._hasher.hash(_DUMMY_PASSWORD)
        # Sessions are immutable once issued (they end only by expiring), so a
        # session seen once is answered from memory afterwards.
        self._known: dict[bytes, tuple[str, int]] = {}
        self._known_lock = threading.Lock()

    @property
    def open_registration(self) -> bool:
        return self._open_registration

    def add_user(self, email: str, password: str) -> str:
        """Create an account (admin path: always allowed)."""
        email = normalise_email(email)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidRequest(
                f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
            )
        self._store.add_user(email, self._hasher.hash(password))
        return email

    def sign_up(self, email: str, password: str) -> str:
        if not self._open_registration:
            raise AccessDenied(
                "registration is closed on this clean room",
                remedy="ask the operator to create the account (cleanroom user add)",
            )
        return self.add_user(email, password)

    def sign_in(self, email: str, password: str) -> Session:
        try:
            email = normalise_email(email)
        except InvalidRequest:
            raise AuthenticationFailed("wrong email or password") from None
        stored = self._store.password_hash(email)
        try:
            self._hasher.verify(stored or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            raise AuthenticationFailed("wrong email or password") from None
        if stored is None:
            raise AuthenticationFailed("wrong email or password")
        if self._hasher.check_needs_rehash(stored):
            self._store.set_password_hash(email, self._hasher.hash(password))
        token = secrets.token_urlsafe(32)
        expires = int(time.time()) + self._ttl
        self._store.add_session(_digest(token), email, expires)
        return Session(token=token, email=email, expires=expires)

    def authenticate(self, token: str | None) -> str:
        """The email of the session *token*; :class:`AuthenticationFailed` otherwise."""
        if not token:
            raise AuthenticationFailed("this request needs a bearer token; sign in first")
        known = self.authenticate_from_memory(token)
        if known is not None:
            return known
        digest = _digest(token)
        found = self._store.session(digest)
        if found is None:
            raise AuthenticationFailed("the token is not valid; sign in again")
        with self._known_lock:
            if len(self._known) >= _MAX_KNOWN_SESSIONS:
                self._known.clear()
            self._known[digest] = found
        return self._unexpired(found)

    def authenticate_from_memory(self, token: str | None) -> str | None:
        """Like :meth:`authenticate` for a session already seen; None means "ask the store".

        Never touches the database, so it can run on the event loop.
        """
        if not token:
            raise AuthenticationFailed("this request needs a bearer token; sign in first")
        with self._known_lock:
            found = self._known.get(_digest(token))
        return None if found is None else self._unexpired(found)

    @staticmethod
    def _unexpired(session: tuple[str, int]) -> str:
        email, expires = session
        if expires < time.time():
            raise AuthenticationFailed("the token has expired; sign in again")
        return email


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
