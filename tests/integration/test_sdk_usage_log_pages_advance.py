"""Walking the decision log page by page refuses a cursor that does not move forward.

``Instance.usage_log_pages`` follows each page's ``page.next_after``. A service
that answers with a cursor at or before the current one (or one that is not a
JSON integer) would otherwise make the walk loop for ever over the same
entries, or skip back and serve them twice: the SDK stops with
:class:`LogIntegrityError` instead. The service is an in-process fake that
serves the pages given, and refuses to be asked more often than that.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cleanroom.client.instance import Instance
from cleanroom.errors import LogIntegrityError

INSTANCE_ID = "0123456789abcdef01234567"


class PagedLog:
    """A service answering ``GET .../log`` with the given ``next_after`` cursors, in turn."""

    def __init__(self, cursors: list[Any]) -> None:
        self.cursors = cursors
        self.asked: list[dict[str, Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        assert (method, path) == ("GET", f"/v1/instances/{INSTANCE_ID}/log")
        if len(self.asked) >= len(self.cursors):
            raise AssertionError("the walk asked for more pages than the service has")
        self.asked.append(dict(kwargs["params"]))
        cursor = self.cursors[len(self.asked) - 1]
        page = {"after": kwargs["params"]["after"], "limit": 2, "next_after": cursor}
        return httpx.Response(200, json={"entries": [], "page": page})


def _instance(service: PagedLog) -> Instance:
    return Instance(service, {"id": INSTANCE_ID}, expected_id=INSTANCE_ID)  # type: ignore[arg-type]


def test_the_walk_follows_each_cursor_to_the_last_page() -> None:
    service = PagedLog([1, 3, None])
    pages = list(_instance(service).usage_log_pages(limit=2))
    assert [p["page"]["next_after"] for p in pages] == [1, 3, None]
    assert service.asked == [
        {"after": -1, "limit": 2},
        {"after": 1, "limit": 2},
        {"after": 3, "limit": 2},
    ]


@pytest.mark.parametrize(
    "cursors",
    [
        pytest.param([-1], id="the first page's cursor is where it started"),
        pytest.param([1, 1], id="a cursor equal to the one before"),
        pytest.param([3, 1], id="a cursor going back"),
        pytest.param([3, -5], id="a cursor below the start"),
        pytest.param(["3"], id="a string"),
        pytest.param([3.0], id="a float"),
        pytest.param([True], id="a boolean"),
        pytest.param([[3]], id="a list"),
    ],
)
def test_a_cursor_that_does_not_advance_is_refused(cursors: list[Any]) -> None:
    service = PagedLog(cursors)
    walk = _instance(service).usage_log_pages(limit=2)
    with pytest.raises(LogIntegrityError, match="next page does not come after this one"):
        list(walk)
    # Every page served was asked for exactly once: nothing was fetched twice.
    assert len(service.asked) == len(cursors)
