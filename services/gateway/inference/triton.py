"""One async gRPC client to Triton, shared by every request; errors mapped to Hearth's taxonomy.

Only the gateway holds the key of Triton's restricted APIs (model repository, config,
statistics...): explicit model control executes model code.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from shared.errors import BadRequest, HearthError, NotFound, PermanentFailure, Unavailable
from shared.settings import HearthSettings

ADMIN_HEADER = "hearth-admin"
# Triton names a restricted gRPC protocol's header with this prefix (HTTP takes the bare name).
GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{ADMIN_HEADER}"


def map_error(exc: InferenceServerException, model: str) -> HearthError:
    """A Triton error as the Hearth error a client should see."""
    status = str(exc.status() or "")
    message = exc.message() or str(exc)
    if "is not ready" in message:
        return Unavailable(f"{model}: {message}", code="model-not-ready", extra={"retry_after_s": 5})
    if "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status or "failed to connect" in message.lower():
        return Unavailable(f"Triton is not reachable: {message}", extra={"retry_after_s": 5})
    lowered = message.lower()
    # Only Triton's own "no such model" phrasings: a model whose code fails to load because *its*
    # file is not found ("FileNotFoundError: ... not found") is a load failure, not an unknown model.
    if "unknown model" in lowered or "failed to poll from model repository" in lowered or "NOT_FOUND" in status:
        return NotFound(f"model {model!r} is not in the repository", code="unknown-model")
    if "is not ready" in lowered or "unavailable" in lowered:
        return Unavailable(f"model {model!r} is not loaded: {message}", code="model-not-ready")
    if "INVALID_ARG" in status or "unexpected" in lowered or "invalid" in lowered:
        return BadRequest(f"{model}: {message}", code="invalid-tensor")
    return PermanentFailure(f"{model}: {message}", code="inference-failed")


class Triton:
    """The gateway's Triton connection (async gRPC, reused)."""

    def __init__(self, settings: HearthSettings) -> None:
        self._client = grpcclient.InferenceServerClient(settings.triton_grpc_address)
        self._admin = {GRPC_ADMIN_HEADER: settings.read_secret("triton-admin-key")}
        self._metadata: dict[str, dict[str, Any]] = {}

    async def close(self) -> None:
        await self._client.close()

    async def index(self) -> list[dict[str, Any]]:
        """Every model of the repository with its state (READY, UNAVAILABLE + reason, or unloaded)."""
        try:
            reply = await self._client.get_model_repository_index(headers=self._admin, as_json=True)
        except InferenceServerException as exc:
            raise map_error(exc, "*") from None
        return list(reply.get("models", []))

    def forget(self, name: str) -> None:
        """Drop what is known of a model's metadata (it went away: unloaded, or Triton restarted)."""
        self._metadata.pop(name, None)

    async def load(self, name: str, config: dict[str, Any] | None = None) -> None:
        self._metadata.pop(name, None)
        try:
            await self._client.load_model(name, headers=self._admin, config=json.dumps(config) if config else None)
        except InferenceServerException as exc:
            err = map_error(exc, name)
            if isinstance(err, NotFound):
                raise err from None
            # Triton appends the model code's stack ("At: <file>(<line>)"): keep the reason only.
            reason = (exc.message() or str(exc)).split("\n\nAt:")[0].strip()
            raise PermanentFailure(f"loading {name} failed: {reason}", code="load-failed") from None

    async def unload(self, name: str) -> None:
        self._metadata.pop(name, None)
        try:
            await self._client.unload_model(name, headers=self._admin)
        except InferenceServerException as exc:
            raise map_error(exc, name) from None

    async def config(self, name: str) -> dict[str, Any]:
        """The complete configuration Triton serves the (loaded) model with."""
        try:
            reply = await self._client.get_model_config(name, headers=self._admin, as_json=True)
        except InferenceServerException as exc:
            raise map_error(exc, name) from None
        return dict(reply["config"])

    async def metadata(self, name: str) -> dict[str, Any]:
        """Inputs and outputs of a ready model: ``{"inputs": {name: {datatype, shape}}, "outputs": ...}``."""
        cached = self._metadata.get(name)
        if cached is not None:
            return cached
        try:
            meta = await self._client.get_model_metadata(name, as_json=True)
            config = (await self._client.get_model_config(name, headers=self._admin, as_json=True))["config"]
        except InferenceServerException as exc:
            raise map_error(exc, name) from None
        batched = int(config.get("max_batch_size", 0)) > 0

        def spec(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            out = {}
            for item in items:
                shape = [int(d) for d in item.get("shape", [])]
                if batched and (not shape or shape[0] != -1):
                    shape = [-1, *shape]
                out[item["name"]] = {"datatype": item["datatype"], "shape": shape}
            return out

        result = {
            "inputs": spec(meta.get("inputs", [])),
            "outputs": spec(meta.get("outputs", [])),
            "versions": meta.get("versions", []),
        }
        self._metadata[name] = result
        return result

    async def infer(
        self,
        name: str,
        inputs: dict[str, np.ndarray[Any, Any]],
        outputs: list[str],
        *,
        timeout_s: float | None = None,
        request_id: str = "",
        model_version: str = "",
    ) -> tuple[dict[str, np.ndarray[Any, Any]], str]:
        """Run the model; returns its outputs and the version that answered."""
        infer_inputs = []
        for key, array in inputs.items():
            dtype = "BYTES" if array.dtype == np.object_ else np_to_triton_dtype(array.dtype)
            tensor = grpcclient.InferInput(key, list(array.shape), dtype)
            tensor.set_data_from_numpy(array)
            infer_inputs.append(tensor)
        requested = [grpcclient.InferRequestedOutput(o) for o in outputs]
        try:
            result = await self._client.infer(
                name,
                infer_inputs,
                model_version=model_version,
                outputs=requested,
                request_id=request_id,
                client_timeout=timeout_s,
            )
        except InferenceServerException as exc:
            raise map_error(exc, name) from None
        arrays = {o: result.as_numpy(o) for o in outputs}
        # The protobuf field directly: as_json=True renders the whole response to JSON first.
        return arrays, str(result.get_response().model_version)

    async def server_ready(self) -> bool:
        try:
            return bool(await self._client.is_server_ready())
        except InferenceServerException:
            return False
