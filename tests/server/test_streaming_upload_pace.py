"""How slowly an upload may arrive: :class:`UploadPace` refuses a pace that could
never stop a sender, and ``_in_pace`` tells a sender that fell behind the average
rate (RequestTimeout) from one that went quiet (InvalidRequest).

The clock ``_in_pace`` reads is replaced, so "how long the upload has run" is
set by the test; only the wait for the next piece is real, and it is short."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from cleanroom.errors import (
    ConfigurationError,
    Error,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
)
from cleanroom.server import streaming
from cleanroom.server.streaming import UploadPace

SHORT_S = 0.01  # the one real wait: for a piece that never comes
LONG_S = 3600.0


@pytest.mark.parametrize(
    ("idle", "grace", "rate"),
    [
        pytest.param(0.0, 1.0, 1, id="no idle timeout"),
        pytest.param(-1.0, 1.0, 1, id="a negative idle timeout"),
        pytest.param(1.0, -0.5, 1, id="a negative grace"),
        pytest.param(1.0, 1.0, 0, id="no minimum rate"),
        pytest.param(1.0, 1.0, -1, id="a negative minimum rate"),
    ],
)
def test_a_pace_that_could_never_stop_a_sender_is_refused(
    idle: float, grace: float, rate: int
) -> None:
    with pytest.raises(ConfigurationError, match="must be positive"):
        UploadPace(idle_timeout_s=idle, grace_s=grace, min_bytes_per_s=rate)


def test_no_grace_is_a_valid_pace() -> None:
    UploadPace(idle_timeout_s=1.0, grace_s=0.0, min_bytes_per_s=1)


@pytest.mark.parametrize(("received", "deadline"), [(0, 110.0), (1000, 120.0), (5000, 160.0)])
def test_the_deadline_is_the_grace_plus_the_time_the_bytes_received_earn(
    received: int, deadline: float
) -> None:
    pace = UploadPace(idle_timeout_s=1.0, grace_s=10.0, min_bytes_per_s=100)
    assert pace.deadline(100.0, received) == pytest.approx(deadline)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_in_pace``'s clock stands still: every check happens when the upload began.
    Only the module's view of ``time`` is replaced; the event loop keeps its clock."""
    monkeypatch.setattr(streaming, "time", SimpleNamespace(monotonic=lambda: 1000.0))


async def _stalls_after(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
    await asyncio.Event().wait()  # never set: the sender goes quiet
    yield b""  # pragma: no cover


async def _drain(pace: UploadPace, pieces: list[bytes]) -> list[bytes]:
    got: list[bytes] = []
    async with asyncio.timeout(30):  # a failed check would otherwise wait LONG_S
        async for chunk in streaming._in_pace(_stalls_after(pieces), pace):
            got.append(chunk)
    return got


@pytest.mark.parametrize(
    ("pace", "error", "message"),
    [
        pytest.param(
            UploadPace(idle_timeout_s=LONG_S, grace_s=SHORT_S, min_bytes_per_s=1),
            RequestTimeout,
            "slower than 1 bytes/s on average",
            id="behind the average rate, long before going quiet",
        ),
        pytest.param(
            UploadPace(idle_timeout_s=SHORT_S, grace_s=LONG_S, min_bytes_per_s=1),
            InvalidRequest,
            "sent nothing for",
            id="quiet, long before falling behind",
        ),
    ],
)
def test_a_stalled_upload_is_stopped_for_the_right_reason(
    frozen_clock: None, pace: UploadPace, error: type[Error], message: str
) -> None:
    with pytest.raises(error, match=message) as stopped:
        asyncio.run(_drain(pace, [b"abc", b"de"]))
    assert type(stopped.value) is error


def test_bytes_received_move_the_deadline(frozen_clock: None) -> None:
    # Under a frozen clock, bytes earn time: 2 bytes at 1 byte/s put the deadline
    # 2 s ahead, past the short idle timeout, so it is the silence that stops it.
    pace = UploadPace(idle_timeout_s=SHORT_S, grace_s=0.0, min_bytes_per_s=1)
    with pytest.raises(InvalidRequest, match="sent nothing for") as stopped:
        asyncio.run(_drain(pace, [b"a", b"b"]))
    assert type(stopped.value) is InvalidRequest


class _Opener:
    """Takes every piece: only the relay's own size check can refuse."""

    def __init__(self) -> None:
        self.fed = 0

    def feed(self, piece: bytes) -> None:
        self.fed += len(piece)


@pytest.mark.parametrize(("extra", "refused"), [(0, False), (1, True)])
def test_a_body_past_the_limit_and_the_framing_is_refused_as_it_arrives(
    extra: int, refused: bool
) -> None:
    max_size = 1000
    total = max_size + streaming._FRAMING + extra
    pace = UploadPace(idle_timeout_s=LONG_S, grace_s=LONG_S, min_bytes_per_s=1)
    opener = _Opener()

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, total, 64 * 1024):
            yield b"\0" * min(64 * 1024, total - start)

    async def relay() -> str:
        return await streaming.relay_stream(opener, body(), max_size, pace=pace)  # type: ignore[arg-type]

    if refused:
        with pytest.raises(PayloadTooLarge, match="larger than the limit of 1000 bytes"):
            asyncio.run(relay())
        assert opener.fed < total
    else:
        assert asyncio.run(relay()).startswith("sha256:")
        assert opener.fed == total
