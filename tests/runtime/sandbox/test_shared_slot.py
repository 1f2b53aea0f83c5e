"""The shared slot: byte-for-byte CRT1 layout, and empty between requests."""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from cleanroom.runtime import RuntimeLimits
from cleanroom.runtime.sandbox.process import WorkerProcess
from cleanroom.runtime.sandbox.slot import write_tensors
from cleanroom.wire.formats import ModelFormat
from cleanroom.wire.tensors import decode_tensors, encode_tensors


@pytest.fixture
def slot() -> mmap.mmap:
    return mmap.mmap(-1, 1 << 16)


CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "mixed numeric",
        {
            "x": np.arange(12, dtype=np.float32).reshape(3, 4),
            "ids": np.array([1, 2, 3], np.int64),
            "mask": np.array([True, False]),
            "half": np.ones((2, 2), np.float16),
        },
    ),
    ("empty and scalar", {"none": np.zeros((0, 3), np.float32), "one": np.array(7, np.int8)}),
    ("big-endian input", {"be": np.arange(5, dtype=">i4")}),
    ("non-contiguous", {"t": np.arange(12, dtype=np.float64).reshape(3, 4).T}),
    ("strings", {"s": np.array(["a", "é"]), "n": np.array([1.5])}),
]


@pytest.mark.parametrize(("name", "tensors"), CASES)
def test_in_place_layout_equals_encode_tensors(
    slot: mmap.mmap, name: str, tensors: dict[str, Any]
) -> None:
    slot[:] = b"\xaa" * len(slot)  # padding must be written, not inherited
    written = write_tensors(slot, tensors)
    expected = encode_tensors(tensors)
    assert written == len(expected), name
    assert slot[:written] == expected, name
    decoded = decode_tensors(bytes(slot[:written]))
    for key, value in tensors.items():
        np.testing.assert_array_equal(decoded[key], value)


def test_tensors_that_do_not_fit_are_left_to_the_caller() -> None:
    small = mmap.mmap(-1, 4096)
    assert write_tensors(small, {"x": np.zeros(2048, np.float32)}) is None
    assert write_tensors(small, {"s": np.array(["x" * 5000])}) is None


def test_slot_holds_nothing_after_a_request(
    supervisor: object, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    # The session supervisor has made this process non-dumpable, as a service is.
    worker = WorkerProcess(ModelFormat.TFLITE, limits, network="auto")
    worker.start(model_bytes("add_mul.tflite"))
    try:
        secret = np.full((1, 4), 7.25, np.float32)
        out = worker.run({"a": secret, "b": secret}, timeout_s=20.0)
        np.testing.assert_array_equal(out["sum"], secret * 2)
        slot = worker._slot
        assert slot is not None
        assert slot[:] == bytes(len(slot))
    finally:
        worker.stop()
