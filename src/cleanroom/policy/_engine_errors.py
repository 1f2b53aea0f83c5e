"""Turning rego-cpp's error trees into one readable line.

rego-cpp reports compile and evaluation errors as an ``rego-errorseq`` tree
printed in its own s-expression syntax, where strings are length-prefixed
(``(errormsg 27:Invalid assignment operator)``) and locations are
``name|offset|length``. This module reads the messages and locations out
of that text and the error code out of an evaluation result, and nothing
else.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["compile_error_message", "evaluation_error_code"]

_LOCATION = re.compile(r"\(error (\d+):")
_MESSAGE = re.compile(r"\(errormsg (\d+):")
_ERROR_CODE_KIND = 1803  # NodeKind.ErrorCode in regopy


def _length_prefixed(text: bytes, start: int, length: int) -> str:
    return text[start : start + length].decode("utf-8", errors="replace")


def _line_col(source: str, offset: int) -> str:
    head = source.encode("utf-8")[:offset].decode("utf-8", errors="replace")
    line = head.count("\n") + 1
    col = len(head) - (head.rfind("\n") + 1) + 1
    return f"{line}:{col}"


def compile_error_message(raw: str, source: str) -> str:
    """``"policy.rego:4:5: Invalid assignment operator; ..."`` from a RegoError text."""
    data = raw.encode("utf-8")
    found: list[str] = []
    for match in _MESSAGE.finditer(raw):
        # The byte position of the length-prefixed text in *data*.
        start = len(raw[: match.end()].encode("utf-8"))
        message = _length_prefixed(data, start, int(match.group(1)))
        where = ""
        before = list(_LOCATION.finditer(raw, 0, match.start()))
        location = before[-1] if before else None
        if location is not None:
            loc_start = len(raw[: location.end()].encode("utf-8"))
            name = _length_prefixed(data, loc_start, int(location.group(1)))
            rest = data[loc_start + int(location.group(1)) :].decode("utf-8", errors="replace")
            offset = re.match(r"\|(\d+)\|", rest)
            if name and offset is not None:
                where = f"{name}:{_line_col(source, int(offset.group(1)))}: "
        found.append(where + message)
    if not found:
        return raw.strip() or "the policy engine rejected the module"
    return "; ".join(dict.fromkeys(found))


def evaluation_error_code(output: Any) -> str:
    """The engine's error code (e.g. ``eval_builtin_error``) of a failed query.

    Only the code is kept: an engine message may quote values from the input
    document, and those must not reach logs or other parties.
    """
    try:
        from regopy.rego_shared import rego_node_value

        seq = output.node()
        for i in range(len(seq)):
            error = seq.at(i)
            for j in range(len(error)):
                child = error.at(j)
                if int(child.kind) == _ERROR_CODE_KIND:
                    code = str(rego_node_value(child._impl))
                    if re.fullmatch(r"[a-z0-9_]{1,64}", code):
                        return code
    except Exception:  # noqa: S110 - a code is a nicety; the decision is deny either way
        pass
    return "unknown"
