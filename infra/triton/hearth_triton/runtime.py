"""ONNX Runtime sessions placed by the Triton instance they serve (``KIND_CPU`` / ``KIND_GPU``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .params import ModelParams

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"


class PlacementError(RuntimeError):
    """The instance asks for a device this Triton environment cannot run the model on."""


def choose_providers(kind: str, device_id: int, available: Sequence[str]) -> list[Any]:
    """Execution providers for an instance of ``kind`` (Triton's ``model_instance_kind``).

    A GPU instance needs the CUDA provider (package ``onnxruntime-gpu``); falling back to the CPU
    silently would break the lifecycle manager's placement and memory accounting, so it fails.
    """
    if kind == "GPU":
        if CUDA_EP not in available:
            raise PlacementError(
                f"instance kind GPU needs ONNX Runtime's {CUDA_EP}, which this environment lacks "
                f"(available: {', '.join(available)}); install onnxruntime-gpu in the Triton venv or place it on CPU"
            )
        return [(CUDA_EP, {"device_id": device_id}), CPU_EP]
    return [CPU_EP]


def create_session(path: Path, args: dict[str, str], params: ModelParams) -> Any:
    """An ``InferenceSession`` for ``path`` on the device of the instance described by ``args``.

    Tuning parameters (all optional): ``ort.intra_op_threads`` (0 = ONNX Runtime's default, one
    per physical core), ``ort.spinning`` (thread-pool busy-waiting; off by default because several
    model instances share the cores of a small box and spinning threads starve each other).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Line crops and pages vary in shape from request to request; an arena sized for the largest
    # one seen would pin that peak for the life of the instance.
    options.enable_cpu_mem_arena = False
    options.inter_op_num_threads = 1
    threads = params.get_int("ort.intra_op_threads", 0, minimum=0)
    if threads:
        options.intra_op_num_threads = threads
    if not params.get_bool("ort.spinning", False):
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = choose_providers(
        args.get("model_instance_kind", "CPU"),
        int(args.get("model_instance_device_id", "0") or 0),
        ort.get_available_providers(),
    )
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)
