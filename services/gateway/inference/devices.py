"""Device inventory: the CPU always, NVIDIA GPUs through NVML when a driver is present.

A GPU that is absent is reported as absent (an empty list), never as a zero-filled device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psutil

MB = 1024 * 1024


@dataclass(frozen=True)
class Device:
    id: str  # "cpu" or "gpu:<index>" (the form POST /v1/models/{name}/load takes)
    kind: str  # "cpu" | "gpu"
    name: str
    memory_total_mb: float
    memory_free_mb: float
    utilisation_pct: float | None = None
    uuid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_device() -> Device:
    mem = psutil.virtual_memory()
    return Device(
        id="cpu",
        kind="cpu",
        name=f"{psutil.cpu_count(logical=True)} logical CPUs",
        memory_total_mb=round(mem.total / MB),
        memory_free_mb=round(mem.available / MB),
        utilisation_pct=psutil.cpu_percent(interval=None),
    )


def gpu_devices() -> list[Device]:
    """NVIDIA GPUs seen by NVML; [] when there is no driver or no GPU."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                utilisation: float | None = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                utilisation = None
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            out.append(
                Device(
                    id=f"gpu:{index}",
                    kind="gpu",
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_total_mb=round(memory.total / MB),
                    memory_free_mb=round(memory.free / MB),
                    utilisation_pct=utilisation,
                    uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                )
            )
        return out
    finally:
        pynvml.nvmlShutdown()


def inventory() -> list[Device]:
    return [cpu_device(), *gpu_devices()]


if __name__ == "__main__":
    import json

    print(json.dumps([d.to_dict() for d in inventory()], indent=2))
