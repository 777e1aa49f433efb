from __future__ import annotations

import json

import numpy as np
import pytest

from services.gateway.inference.kserve import (
    InferResponse,
    TensorOut,
    binary_response,
    parse_binary_request,
    to_array,
    wants_binary,
)
from shared.errors import BadRequest

pytestmark = pytest.mark.unit

DECLARED = {"X": {"datatype": "FP32", "shape": [-1, 4]}, "S": {"datatype": "BYTES", "shape": [-1, 1]}}


def body(header: dict[str, object], *blobs: bytes) -> tuple[bytes, int]:
    raw = json.dumps(header).encode()
    return raw + b"".join(blobs), len(raw)


def test_binary_inputs_are_decoded_little_endian() -> None:
    x = np.arange(8, dtype="<f4").reshape(2, 4)
    strings = b"".join(len(s).to_bytes(4, "little") + s for s in (b"ab", "合同".encode()))
    data, length = body(
        {
            "inputs": [
                {"name": "X", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}},
                {"name": "S", "shape": [2, 1], "datatype": "BYTES", "parameters": {"binary_data_size": len(strings)}},
            ],
            "outputs": [{"name": "Y", "parameters": {"binary_data": True}}],
        },
        x.tobytes(),
        strings,
    )
    request, raw = parse_binary_request(data, length)
    assert np.array_equal(to_array(request.inputs[0], DECLARED, raw["X"]), x)
    assert to_array(request.inputs[1], DECLARED, raw["S"]).reshape(-1).tolist() == [b"ab", "合同".encode()]
    assert wants_binary(request, "Y")
    assert not wants_binary(request, "Z")


@pytest.mark.parametrize(
    ("header", "blobs", "length_delta", "fragment"),
    [
        ({"inputs": []}, (b"x",), 0, "after the last binary input"),
        (
            {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 99}}]},
            (b"\0" * 16,),
            0,
            "does not fit the body",
        ),
        ({"inputs": []}, (), 10_000, "does not fit"),
    ],
)
def test_malformed_binary_bodies_are_400(
    header: dict[str, object], blobs: tuple[bytes, ...], length_delta: int, fragment: str
) -> None:
    data, length = body(header, *blobs)
    with pytest.raises(BadRequest, match=fragment):
        parse_binary_request(data, length + length_delta)


def test_wrong_binary_size_for_the_shape_is_named() -> None:
    data, length = body(
        {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 12}}]},
        b"\0" * 12,
    )
    request, raw = parse_binary_request(data, length)
    with pytest.raises(BadRequest, match="12 bytes for shape"):
        to_array(request.inputs[0], DECLARED, raw["X"])


def test_binary_outputs_follow_the_json_header() -> None:
    y = np.array([[2.0, 4.0, 6.0, 8.0]], dtype=np.float32)
    response = InferResponse(
        model_name="m", model_version="1", outputs=[TensorOut(name="Y", shape=[1, 4], datatype="FP32", data=[])]
    )
    content, length = binary_response(response, {"Y": y}, {"Y"})
    header = json.loads(content[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert "data" not in header["outputs"][0]
    assert np.array_equal(np.frombuffer(content[length:], dtype="<f4").reshape(1, 4), y)
