"""KServe v2 JSON tensors <-> numpy, checked against a model's metadata (no transport here)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from shared.errors import BadRequest

DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


class TensorIn(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] = Field(default_factory=list)
    """Empty when the values travel in binary (``parameters.binary_data_size``)."""
    parameters: dict[str, Any] = Field(default_factory=dict)


class OutputRequest(BaseModel):
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequest(BaseModel):
    """KServe v2 inference request (JSON form)."""

    id: str | None = None
    inputs: list[TensorIn]
    outputs: list[OutputRequest] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)


class TensorOut(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    """KServe v2 inference response (JSON form)."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[TensorOut]


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    return flat


def to_array(tensor: TensorIn, declared: dict[str, dict[str, Any]], raw: bytes | None = None) -> np.ndarray[Any, Any]:
    """The numpy array of one input, checked against the model's declared inputs.

    ``raw`` holds the input's bytes when it came in the binary tensor extension.
    """
    spec = declared.get(tensor.name)
    if spec is None:
        raise BadRequest(f"unknown input {tensor.name!r}; the model takes: {', '.join(sorted(declared))}")
    if tensor.datatype != spec["datatype"]:
        raise BadRequest(f"input {tensor.name!r} must be {spec['datatype']}, not {tensor.datatype}")
    expected = spec["shape"]
    if len(expected) != len(tensor.shape) or any(e not in (-1, g) for e, g in zip(expected, tensor.shape, strict=True)):
        raise BadRequest(f"input {tensor.name!r} has shape {tensor.shape}; the model expects {expected} (-1 = any)")
    count = int(np.prod(tensor.shape)) if tensor.shape else 1
    if raw is not None:
        return _from_binary(tensor, raw, count)
    flat = _flatten(tensor.data)
    if len(flat) != count:
        raise BadRequest(f"input {tensor.name!r} carries {len(flat)} values for shape {tensor.shape} ({count})")
    if tensor.datatype == "BYTES":
        values = [v.encode() if isinstance(v, str) else bytes(v) for v in flat]
        return np.array(values, dtype=np.object_).reshape(tensor.shape)
    try:
        return np.array(flat, dtype=DTYPES[tensor.datatype]).reshape(tensor.shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(f"input {tensor.name!r}: values do not fit {tensor.datatype}: {exc}") from None


def to_tensor(name: str, datatype: str, array: np.ndarray[Any, Any]) -> TensorOut:
    """One output as KServe v2 JSON (BYTES as UTF-8 text where it decodes, else a list of ints)."""
    if datatype == "BYTES":
        data: list[Any] = []
        for item in array.reshape(-1):
            raw = item if isinstance(item, bytes) else bytes(item)
            try:
                data.append(raw.decode())
            except UnicodeDecodeError:
                data.append(list(raw))
    else:
        data = array.reshape(-1).tolist()
    return TensorOut(name=name, shape=list(array.shape), datatype=datatype, data=data)


HEADER_LENGTH = "inference-header-content-length"
"""KServe v2 binary tensor extension: the JSON header's length; binary tensors follow it."""


def parse_request(data: bytes) -> InferRequest:
    try:
        return InferRequest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"not a KServe v2 inference request: {where}: {first['msg']}") from None


def parse_binary_request(body: bytes, header_length: int) -> tuple[InferRequest, dict[str, bytes]]:
    """Split a binary-extension body into the JSON request and each binary input's bytes."""
    if not 0 < header_length <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length {header_length} does not fit a {len(body)}-byte body")
    request = parse_request(body[:header_length])
    raw: dict[str, bytes] = {}
    offset = header_length
    for tensor in request.inputs:
        size = tensor.parameters.get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(body):
            raise BadRequest(f"input {tensor.name!r}: binary_data_size {size!r} does not fit the body")
        raw[tensor.name] = body[offset : offset + size]
        offset += size
    if offset != len(body):
        raise BadRequest(f"{len(body) - offset} bytes after the last binary input")
    return request, raw


def _from_binary(tensor: TensorIn, raw: bytes, count: int) -> np.ndarray[Any, Any]:
    if tensor.datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise BadRequest(f"input {tensor.name!r}: truncated BYTES element")
            length = int.from_bytes(raw[offset : offset + 4], "little")
            values.append(raw[offset + 4 : offset + 4 + length])
            offset += 4 + length
        if offset != len(raw) or len(values) != count:
            raise BadRequest(f"input {tensor.name!r}: {len(values)} BYTES elements for shape {tensor.shape}")
        return np.array(values, dtype=np.object_).reshape(tensor.shape)
    dtype = np.dtype(DTYPES[tensor.datatype]).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise BadRequest(
            f"input {tensor.name!r}: {len(raw)} bytes for shape {tensor.shape} of {tensor.datatype} "
            f"({count * dtype.itemsize} expected)"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(tensor.shape)


def wants_binary(request: InferRequest, name: str) -> bool:
    """Whether the client asked for this output in binary."""
    for out in request.outputs:
        if out.name == name and "binary_data" in out.parameters:
            return bool(out.parameters["binary_data"])
    return bool(request.parameters.get("binary_data_output", False))


def binary_response(
    response: InferResponse, arrays: dict[str, np.ndarray[Any, Any]], binary: set[str]
) -> tuple[bytes, int]:
    """The body of a binary-extension response and its JSON header length."""
    outputs, blobs = [], []
    for tensor in response.outputs:
        entry = tensor.model_dump()
        if tensor.name in binary:
            array = arrays[tensor.name]
            if tensor.datatype == "BYTES":
                blob = b"".join(
                    len(v).to_bytes(4, "little") + v
                    for v in (x if isinstance(x, bytes) else bytes(x) for x in array.reshape(-1))
                )
            else:
                blob = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry.pop("data")
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        outputs.append(entry)
    header = json.dumps(
        {
            "model_name": response.model_name,
            "model_version": response.model_version,
            "id": response.id,
            "outputs": outputs,
        }
    ).encode()
    return header + b"".join(blobs), len(header)
