"""KServe v2 JSON tensors <-> numpy, checked against a model's metadata (no transport here)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

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
    data: list[Any]
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


def to_array(tensor: TensorIn, declared: dict[str, dict[str, Any]]) -> np.ndarray[Any, Any]:
    """The numpy array of one input, checked against the model's declared inputs."""
    spec = declared.get(tensor.name)
    if spec is None:
        raise BadRequest(f"unknown input {tensor.name!r}; the model takes: {', '.join(sorted(declared))}")
    if tensor.datatype != spec["datatype"]:
        raise BadRequest(f"input {tensor.name!r} must be {spec['datatype']}, not {tensor.datatype}")
    expected = spec["shape"]
    if len(expected) != len(tensor.shape) or any(e not in (-1, g) for e, g in zip(expected, tensor.shape, strict=True)):
        raise BadRequest(f"input {tensor.name!r} has shape {tensor.shape}; the model expects {expected} (-1 = any)")
    flat = _flatten(tensor.data)
    count = int(np.prod(tensor.shape)) if tensor.shape else 1
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
