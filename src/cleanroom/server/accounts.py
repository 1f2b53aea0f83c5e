"""Accounts and sessions: Argon2id password hashes, opaque expiring tokens.

Password hashing is expensive on purpose (Argon2id, 64 MiB and 0.1-0.5 s per
hash), so it is rationed:

- At most ``hash_slots`` hashes run at once, and at most ``hash_queue`` more
  callers wait for a slot, each for at most ``hash_wait_s``. Anyone else is
  answered :class:`ServiceUnavailable` (503) at once, so concurrent sign-ins
  can neither exhaust memory nor hold the server's worker threads.
- After ``FAILURES_BEFORE_LOCKOUT`` consecutive failed sign-ins for an email,
  that email is locked out for 1 s, doubling with every further failure up to
  15 min. A locked-out sign-in is refused without hashing, with the same
  :class:`AuthenticationFailed` (401) whether the password was right or not,
  and whether the account exists or not. A successful sign-in resets the count.
  The counts live in memory, for at most ``MAX_THROTTLED_EMAILS`` emails (the
  one whose last failure is oldest is forgotten first), and are lost on restart.
  Sessions already issued are not affected by a lockout.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cleanroom.errors import AccessDenied, AuthenticationFailed, InvalidRequest, ServiceUnavailable
from cleanroom.server.store import Store

__all__ = ["Accounts", "Session", "encodes_as_utf8", "normalise_email"]

MIN_PASSWORD_LENGTH = 12
_MAX_KNOWN_SESSIONS = 10_000
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
# A fixed hash to verify against when the account does not exist, so that an
# unknown email and a wrong password take the same time.
_DUMMY_PASSWORD = "cleanroom-dummy-password"  # noqa: S105
_WRONG = "wrong email or password"

# Password hashes run at once (64 MiB each), callers that may wait for one, and how long.
HASH_SLOTS = 2
HASH_QUEUE = 8
HASH_WAIT_S = 5.0
# Failed sign-ins per email before a lockout, its first length, doubling up to the cap.
FAILURES_BEFORE_LOCKOUT = 5
LOCKOUT_BASE_S = 1.0
LOCKOUT_MAX_S = 15 * 60.0
# A count untouched this long starts again from zero.
FORGET_FAILURES_AFTER_S = 24 * 3600.0
MAX_THROTTLED_EMAILS = 10_000


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    # A lone UTF-16 surrogate (JSON allows "\\ud800") is no text: it cannot be stored,
    # nor be part of an attested configuration.
    if not _EMAIL.match(email) or not encodes_as_utf8(email):
        raise InvalidRequest(f"{email!r} is not an email address")
    return email


def encodes_as_utf8(text: str) -> bool:
    """Whether *text* is Unicode text (holds no lone surrogate), so it encodes to UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Session:
    token: str
    email: str
    expires: int


@dataclass
class _Failures:
    """Consecutive failed sign-ins for one email."""

    count: int
    last: float
    locked_until: float


class _Throttle:
    """Per-email failed sign-in counts with growing lockouts, in bounded memory.

    Emails are counted whether or not an account exists, so the answers do not
    tell the two apart. Only failures (each one a full password hash, rationed by
    the hashing slots) add an email to the table; when it is full, the email
    whose last failure is oldest is forgotten. Pushing one email out so that its
    count starts again therefore takes ``max_emails`` other failed sign-ins
    after its last one: with 10,000 that is 10,000 hashes to win a handful of
    guesses. Sign-ins running at the same time for one email count against the
    attempts it has left, so parallel guesses cannot overshoot a lockout.
    """

    def __init__(self, clock: Callable[[], float], max_emails: int) -> None:
        self._clock = clock
        self._max = max_emails
        self._lock = threading.Lock()
        # Least recently failed first.
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        # Attempts running now; bounded by the requests being served at once.
        self._running: dict[str, int] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._failures)

    def begin(self, email: str) -> None:
        """Admit one sign-in attempt for *email*, or refuse it while it is locked out.

        Every admitted attempt must be followed by :meth:`end`.
        """
        now = self._clock()
        with self._lock:
            entry = self._failures.get(email)
            if entry is not None and now - entry.last >= FORGET_FAILURES_AFTER_S:
                del self._failures[email]
                entry = None
            count = 0 if entry is None else entry.count
            running = self._running.get(email, 0)
            wait = 0.0 if entry is None else entry.locked_until - now
            # Below the threshold, the attempts left may run at once; past it, one
            # at a time, each after the lockout that the failure before it set.
            if wait > 0 or count + running >= max(FAILURES_BEFORE_LOCKOUT, count + 1):
                seconds = max(1, math.ceil(wait))
                raise AuthenticationFailed(
                    "too many failed sign-ins for this email; sign-in is paused",
                    remedy=f"wait {seconds} s before trying again",
                    retry_after_s=seconds,
                )
            self._running[email] = running + 1

    def end(self, email: str, *, succeeded: bool | None) -> None:
        """Record an admitted attempt's outcome; ``None``: undecided (no verdict reached)."""
        now = self._clock()
        with self._lock:
            running = self._running.pop(email, 1) - 1
            if running > 0:
                self._running[email] = running
            if succeeded is None:
                return
            if succeeded:
                self._failures.pop(email, None)
                return
            entry = self._failures.pop(email, None)  # re-inserted last: most recent
            count = 1 if entry is None else entry.count + 1
            locked_until = 0.0
            over = count - FAILURES_BEFORE_LOCKOUT
            if over >= 0:
                # min(over, 20): past ten doublings the cap applies anyway.
                locked_until = now + min(LOCKOUT_MAX_S, LOCKOUT_BASE_S * 2 ** min(over, 20))
            self._failures[email] = _Failures(count=count, last=now, locked_until=locked_until)
            while len(self._failures) > self._max:
                self._failures.popitem(last=False)


def check_new_password(password: str) -> None:
    """Refuse a password too short to be an account's."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


class Accounts:
    def __init__(
        self,
        store: Store,
        *,
        open_registration: bool,
        token_ttl_s: int,
        hash_slots: int = HASH_SLOTS,
        hash_queue: int = HASH_QUEUE,
        hash_wait_s: float = HASH_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        max_throttled_emails: int = MAX_THROTTLED_EMAILS,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._store = store
        self._open_registration = open_registration
        self._ttl = token_ttl_s
        # argon2-cffi's defaults are Argon2id with RFC 9106's second recommended profile.
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash(_DUMMY_PASSWORD)
        # Sessions are immutable once issued (they end only by expiring), so a
        # session seen once is answered from memory afterwards.
        self._known: dict[bytes, tuple[str, int]] = {}
        self._known_lock = threading.Lock()
        self._hash_slots = threading.BoundedSemaphore(hash_slots)
        self._hash_admitted = 0  # hashing or waiting to
        self._hash_admit_max = hash_slots + hash_queue
        self._hash_wait_s = hash_wait_s
        self._hash_lock = threading.Lock()
        self._throttle = _Throttle(clock, max_throttled_emails)

    @property
    def open_registration(self) -> bool:
        return self._open_registration

    def add_user(self, email: str, password: str) -> str:
        """Create an account (admin path: always allowed)."""
        email = normalise_email(email)
        check_new_password(password)
        with self._hashing():
            password_hash = self._hasher.hash(password)
        self._store.add_user(email, password_hash)
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
            raise AuthenticationFailed(_WRONG) from None
        self._throttle.begin(email)
        succeeded: bool | None = None
        try:
            with self._hashing():
                stored = self._store.password_hash(email)
                try:
                    self._hasher.verify(stored or self._dummy_hash, password)
                except (VerificationError, InvalidHashError):
                    succeeded = False
                    raise AuthenticationFailed(_WRONG) from None
                if stored is None:
                    succeeded = False
                    raise AuthenticationFailed(_WRONG)
                succeeded = True
                if self._hasher.check_needs_rehash(stored):
                    self._store.set_password_hash(email, self._hasher.hash(password))
        finally:
            self._throttle.end(email, succeeded=succeeded)
        token = secrets.token_urlsafe(32)
        expires = int(time.time()) + self._ttl
        self._store.add_session(_digest(token), email, expires)
        return Session(token=token, email=email, expires=expires)

    @contextmanager
    def _hashing(self) -> Iterator[None]:
        """Hold one of the password-hashing slots, or raise :class:`ServiceUnavailable`."""
        with self._hash_lock:
            if self._hash_admitted >= self._hash_admit_max:
                raise _busy()
            self._hash_admitted += 1
        try:
            if not self._hash_slots.acquire(timeout=self._hash_wait_s):
                raise _busy()
            try:
                yield
            finally:
                self._hash_slots.release()
        finally:
            with self._hash_lock:
                self._hash_admitted -= 1

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


def _busy() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the clean room is busy checking other passwords",
        remedy="try again in a few seconds",
    )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
