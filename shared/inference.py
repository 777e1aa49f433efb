"""Calling a model from a service: ``hearth.infer.<model>`` on NATS, answered by the gateway.

Services never call Triton directly: the gateway loads the model on first use, accounts for
the request and applies its deadlines. Inputs travel as KServe v2 JSON, or, when any input is
given as raw bytes, in the binary tensor extension (the JSON header's length in the
``Inference-Header-Content-Length`` header, the bytes after it), so an image is sent as itself
rather than as a JSON list of numbers four times its size::

    reply = await infer(bus, "chinese_ocr_v3", [Tensor.raw("IMAGE", "UINT8", png), Tensor.text("PARAMS", params)])
    result = json.loads(reply.text("RESULT"))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from shared.bus import Bus
from shared.errors import PermanentFailure, error_from_dict
from shared.tracing import inject_headers

INFER_SUBJECT_PREFIX: Final = "hearth.infer"
HEADER_LENGTH: Final = "Inference-Header-Content-Length"


def infer_subject(model: str) -> str:
    return f"{INFER_SUBJECT_PREFIX}.{model}"


@dataclass(frozen=True, slots=True)
class Tensor:
    """One input tensor: JSON ``data`` (flat, row-major) or ``binary`` bytes (little-endian)."""

    name: str
    datatype: str
    shape: Sequence[int]
    data: Sequence[Any] | None = None
    binary: bytes | None = None

    @classmethod
    def raw(cls, name: str, datatype: str, payload: bytes, shape: Sequence[int] | None = None) -> Tensor:
        """Bytes sent as they are; a UINT8 vector of the payload's length unless ``shape`` says otherwise."""
        return cls(name, datatype, list(shape) if shape is not None else [len(payload)], binary=payload)

    @classmethod
    def text(cls, name: str, *values: str) -> Tensor:
        """A BYTES tensor of UTF-8 strings, shape ``[len(values)]``, in the binary encoding."""
        encoded = [v.encode() for v in values]
        payload = b"".join(len(v).to_bytes(4, "little") + v for v in encoded)
        return cls(name, "BYTES", [len(values)], binary=payload)

    def header(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}
        if self.binary is not None:
            entry["parameters"] = {"binary_data_size": len(self.binary)}
        else:
            entry["data"] = list(self.data or [])
        return entry


@dataclass(frozen=True, slots=True)
class InferReply:
    """The gateway's answer: outputs by name (flat data lists), their shapes, the model version."""

    model: str
    model_version: str | None
    outputs: dict[str, list[Any]] = field(default_factory=dict)
    shapes: dict[str, list[int]] = field(default_factory=dict)

    def text(self, name: str, index: int = 0) -> str:
        """Element ``index`` of a BYTES output, as the text the model wrote."""
        try:
            value = self.outputs[name][index]
        except (KeyError, IndexError):
            raise PermanentFailure(f"{self.model} returned no {name}[{index}]") from None
        if isinstance(value, list):  # bytes that were not UTF-8 come back as a list of ints
            return bytes(value).decode(errors="replace")
        return str(value)


def encode_request(inputs: Sequence[Tensor], outputs: Sequence[str] | None = None) -> tuple[bytes, dict[str, str]]:
    """The NATS payload and headers for ``inputs`` (binary extension when any input is bytes)."""
    request: dict[str, Any] = {"inputs": [t.header() for t in inputs]}
    if outputs:
        request["outputs"] = [{"name": name} for name in outputs]
    header = json.dumps(request, separators=(",", ":")).encode()
    blobs = [t.binary for t in inputs if t.binary is not None]
    if not blobs:
        return header, {}
    return header + b"".join(blobs), {HEADER_LENGTH: str(len(header))}


def decode_reply(model: str, payload: bytes) -> InferReply:
    """The gateway's ``{"ok": …}`` reply as an ``InferReply``, or the ``HearthError`` it carries."""
    try:
        body = json.loads(payload)
    except ValueError:
        raise PermanentFailure(f"malformed reply from the inference plane for {model}") from None
    if not isinstance(body, dict):
        raise PermanentFailure(f"malformed reply from the inference plane for {model}")
    if not body.get("ok"):
        error = body.get("error")
        raise error_from_dict(error if isinstance(error, dict) else {})
    result = body.get("result") or {}
    outputs = {o["name"]: o.get("data") or [] for o in result.get("outputs", [])}
    shapes = {o["name"]: list(o.get("shape", [])) for o in result.get("outputs", [])}
    return InferReply(model=model, model_version=result.get("model_version"), outputs=outputs, shapes=shapes)


async def infer(
    bus: Bus,
    model: str,
    inputs: Sequence[Tensor],
    outputs: Sequence[str] | None = None,
    *,
    timeout_s: float = 60.0,
) -> InferReply:
    """Run ``model`` through the gateway; ``Unavailable`` when no gateway answers in time.

    Model errors come back as the gateway raised them (``BadRequest`` for a bad input, ``Unavailable``
    for a model that cannot load now), so callers map them like any other ``HearthError``.
    """
    payload, headers = encode_request(inputs, outputs)
    headers = inject_headers(dict(headers or {}))  # the caller's trace goes on into the gateway and Triton
    reply = await bus.request(infer_subject(model), payload, timeout=timeout_s, headers=headers or None)
    return decode_reply(model, reply.data)
