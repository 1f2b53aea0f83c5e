"""Syscall numbers as the installed kernel headers define them (to check the filter's tables)."""

from __future__ import annotations

import re
from pathlib import Path


def header_numbers(path: Path) -> dict[str, int]:
    numbers: dict[str, int] = {}
    for match in re.finditer(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", path.read_text()):
        numbers.setdefault(match.group(1), int(match.group(2)))
    return numbers
