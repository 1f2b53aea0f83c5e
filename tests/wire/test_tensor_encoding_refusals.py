"""encode_tensors refuses what it cannot encode with InvalidTensor, never a builtin error.

The server encodes a model's outputs and the SDK a party's inputs: an array of a
dtype no runtime supports, or a tensor without a usable name, is a typed
refusal naming the problem.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cleanroom.errors import InvalidTensor
from cleanroom.wire.tensors import decode_tensors, dtype_name, encode_tensors

UNSUPPORTED = [
    pytest.param(np.zeros(2, dtype="datetime64[s]"), id="datetime64"),
    pytest.param(np.zeros(2, dtype="timedelta64[ms]"), id="timedelta64"),
    pytest.param(np.zeros(2, dtype="V8"), id="raw bytes (void)"),
    pytest.param(np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), id="structured"),
]
if np.dtype(np.longdouble).itemsize > 8:
    UNSUPPORTED.append(pytest.param(np.zeros(2, dtype=np.longdouble), id="longdouble"))


@pytest.mark.parametrize("array", UNSUPPORTED)
def test_an_array_of_an_unsupported_dtype_is_refused(array: np.ndarray[Any, Any]) -> None:
    with pytest.raises(InvalidTensor, match="is not supported"):
        dtype_name(array)
    with pytest.raises(InvalidTensor, match="is not supported"):
        encode_tensors({"x": array})


def test_a_supported_dtype_in_the_other_byte_order_is_encoded_little_endian() -> None:
    array = np.arange(3, dtype=">i4")
    assert dtype_name(array) == "int32"
    assert decode_tensors(encode_tensors({"x": array}))["x"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", ["", 0, None, b"x", ("x",)], ids=repr)
def test_a_tensor_without_a_non_empty_string_name_is_refused(name: Any) -> None:
    with pytest.raises(InvalidTensor, match="non-empty strings"):
        encode_tensors({name: np.zeros(1, dtype=np.float32)})
