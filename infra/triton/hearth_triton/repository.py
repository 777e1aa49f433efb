"""Read a model's ``config.pbtxt`` as Triton's JSON config, and derive load-time overrides from it.

Triton's load API (``POST /v2/repository/models/<name>/load`` with ``{"parameters": {"config":
<json>}}``) *replaces* the model's config with the override; fields it omits are not taken from
``config.pbtxt`` (checked on Triton 2.51: an override with only ``parameters`` loads a model with
no inputs). So an override is the whole config with the changed fields: :func:`override_config`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any


def read_config(model_dir: Path) -> dict[str, Any]:
    """``<model_dir>/config.pbtxt`` as the JSON form Triton's repository API takes."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    message = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    if not message.name:
        message.name = model_dir.name
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def override_config(
    config: dict[str, Any],
    *,
    variant: str | None = None,
    instance_kind: str | None = None,
    instance_count: int | None = None,
    dynamic_batching: bool | None = None,
    parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A copy of ``config`` with the given fields changed.

    ``variant`` sets the ``variant`` parameter the model reads at load; ``instance_kind``
    (``KIND_CPU``/``KIND_GPU``) and ``instance_count`` set a single instance group;
    ``dynamic_batching=False`` removes the dynamic batcher (requests then run one by one).
    """
    out = copy.deepcopy(config)
    params = out.setdefault("parameters", {})
    if variant is not None:
        params["variant"] = {"string_value": variant}
    for key, value in (parameters or {}).items():
        params[key] = {"string_value": value}
    if instance_kind is not None or instance_count is not None:
        groups = out.get("instance_group") or [{"kind": "KIND_CPU", "count": 1}]
        group = {k: v for k, v in groups[0].items() if k in {"kind", "count", "gpus"}}
        if instance_kind is not None:
            group["kind"] = instance_kind
            if instance_kind != "KIND_GPU":
                group.pop("gpus", None)
        if instance_count is not None:
            group["count"] = instance_count
        out["instance_group"] = [group]
    if dynamic_batching is False:
        out.pop("dynamic_batching", None)
    elif dynamic_batching is True and "dynamic_batching" not in out:
        out["dynamic_batching"] = {}
    return out


def load_request_body(config: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of a repository load request carrying ``config`` as its override."""
    return {"parameters": {"config": json.dumps(config)}}
