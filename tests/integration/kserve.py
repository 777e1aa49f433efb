"""A small KServe v2 HTTP client for Triton (binary tensor extension), for tests and benches.

Services never talk to Triton (the gateway does); this talks to it directly to check the model
repository itself. Admin calls send the ``hearth-admin`` key the launcher generated.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from shared.settings import REPO_ROOT, HearthSettings

TRITON_DIR = REPO_ROOT / "infra" / "triton"
MODEL_REPOSITORY = TRITON_DIR / "model_repository"
if str(TRITON_DIR) not in sys.path:
    sys.path.insert(0, str(TRITON_DIR))  # hearth_triton: config.pbtxt -> load override

from hearth_triton.repository import load_request_body, override_config, read_config  # noqa: E402

ADMIN_HEADER = "hearth-admin"
_DATATYPES = {np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32", np.dtype(np.int32): "INT32"}
_NUMPY = {"UINT8": np.uint8, "FP32": np.float32, "INT32": np.int32, "INT64": np.int64, "FP64": np.float64}


class TritonError(Exception):
    """Triton answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _serialize(value: np.ndarray | Sequence[bytes]) -> tuple[str, list[int], bytes]:
    if isinstance(value, np.ndarray) and value.dtype != np.object_:
        datatype = _DATATYPES.get(value.dtype)
        if datatype is None:
            raise TypeError(f"no KServe datatype for {value.dtype}")
        return datatype, list(value.shape), np.ascontiguousarray(value).tobytes()
    items = list(np.asarray(value, dtype=np.object_).reshape(-1))
    payload = b"".join(struct.pack("<I", len(item)) + item for item in items)
    shape = list(value.shape) if isinstance(value, np.ndarray) else [len(items)]
    return "BYTES", shape, payload


def _deserialize(datatype: str, shape: list[int], payload: bytes) -> np.ndarray:
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(payload):
            (length,) = struct.unpack_from("<I", payload, offset)
            items.append(payload[offset + 4 : offset + 4 + length])
            offset += 4 + length
        return np.array(items, dtype=np.object_).reshape(shape)
    return np.frombuffer(payload, dtype=_NUMPY[datatype]).reshape(shape)


class Triton:
    """Async client of one Triton server over KServe v2 HTTP."""

    def __init__(self, base_url: str, admin_key: str, *, timeout: float = 120.0, max_connections: int = 64) -> None:
        self._admin = {ADMIN_HEADER: admin_key}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)

    @classmethod
    def from_settings(cls, settings: HearthSettings, **kwargs: Any) -> Triton:
        return cls(settings.triton_http_url, settings.read_secret("triton-admin-key"), **kwargs)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Triton:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ---- inference ---------------------------------------------------------------------------

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray | Sequence[bytes]], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        header: dict[str, Any] = {
            "inputs": [],
            "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs],
        }
        blobs = []
        for name, value in inputs.items():
            datatype, shape, payload = _serialize(value)
            header["inputs"].append(
                {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(payload)}}
            )
            blobs.append(payload)
        head = json.dumps(header).encode()
        response = await self.http.post(
            f"/v2/models/{model}/infer",
            content=head + b"".join(blobs),
            headers={"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"},
        )
        body = response.content
        if response.status_code != 200:
            raise TritonError(response.status_code, _message(body))
        head_len = int(response.headers.get("Inference-Header-Content-Length", len(body)))
        meta = json.loads(body[:head_len])
        out, offset = {}, head_len
        for tensor in meta["outputs"]:
            size = tensor.get("parameters", {}).get("binary_data_size")
            if size is None:
                out[tensor["name"]] = np.array(tensor["data"]).reshape(tensor["shape"])
                continue
            out[tensor["name"]] = _deserialize(tensor["datatype"], tensor["shape"], body[offset : offset + size])
            offset += size
        return out

    async def ocr(
        self, image: bytes, params: Mapping[str, Any] | None = None, model: str = "chinese_ocr_v3"
    ) -> dict[str, Any]:
        """``chinese_ocr_v3``'s parsed RESULT for one encoded image."""
        inputs: dict[str, np.ndarray | Sequence[bytes]] = {"IMAGE": np.frombuffer(image, dtype=np.uint8)}
        if params is not None:
            inputs["PARAMS"] = [json.dumps(params).encode()]
        result = await self.infer(model, inputs, ["RESULT"])
        return json.loads(result["RESULT"].reshape(-1)[0])

    # ---- repository (restricted: admin key) ----------------------------------------------------

    async def load(self, model: str, config: Mapping[str, Any] | None = None, timeout: float = 300.0) -> None:
        body = load_request_body(dict(config)) if config is not None else None
        response = await self.http.post(
            f"/v2/repository/models/{model}/load", json=body, headers=self._admin, timeout=timeout
        )
        if response.status_code != 200:
            raise TritonError(response.status_code, _message(response.content))

    async def load_variant(self, model: str, variant: str, **overrides: Any) -> None:
        """Load ``model`` from its config.pbtxt with the ``variant`` parameter (and other fields) overridden."""
        config = override_config(read_config(MODEL_REPOSITORY / model), variant=variant, **overrides)
        await self.load(model, config)

    async def load_from_repository(self, model: str) -> None:
        """Load ``model`` with its config.pbtxt, also over an earlier override.

        A plain load of a model loaded with an override keeps the override (Triton sees no change
        in the repository), so going back means sending config.pbtxt itself as the override.
        """
        await self.load(model, read_config(MODEL_REPOSITORY / model))

    async def unload(self, model: str, timeout: float = 120.0) -> None:
        response = await self.http.post(f"/v2/repository/models/{model}/unload", headers=self._admin, timeout=timeout)
        if response.status_code != 200:
            raise TritonError(response.status_code, _message(response.content))

    async def ready(self, model: str) -> bool:
        return (await self.http.get(f"/v2/models/{model}/ready")).status_code == 200

    async def index(self) -> list[dict[str, Any]]:
        response = await self.http.post("/v2/repository/index", headers=self._admin)
        response.raise_for_status()
        return list(response.json())

    async def state(self, model: str) -> str | None:
        """The model's state in the repository index (READY, UNLOADING, UNAVAILABLE, ...)."""
        return next((e.get("state") for e in await self.index() if e["name"] == model), None)

    async def wait_state(self, model: str, state: str, timeout: float = 60.0) -> None:
        """Wait until the repository reports ``state`` (an unload returns before it completes)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (current := await self.state(model)) != state:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{model} is {current}, not {state}, after {timeout}s")
            await asyncio.sleep(0.2)

    async def config(self, model: str) -> dict[str, Any]:
        response = await self.http.get(f"/v2/models/{model}/config", headers=self._admin)
        if response.status_code != 200:
            raise TritonError(response.status_code, _message(response.content))
        return dict(response.json())

    async def stats(self, model: str) -> dict[str, Any]:
        response = await self.http.get(f"/v2/models/{model}/stats", headers=self._admin)
        response.raise_for_status()
        return dict(response.json()["model_stats"][0])


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body.decode(errors="replace")))
    except (json.JSONDecodeError, AttributeError):
        return body.decode(errors="replace")


def triton_pid(settings: HearthSettings) -> int | None:
    """The pid of the ``tritonserver`` serving ``settings``' HTTP port on this host, if any."""
    flag = f"--http-port={settings.triton_http_port}"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"tritonserver") and flag.encode() in argv:
            return int(proc.name)
    return None
