"""Device inventory: the CPU always, NVIDIA GPUs through NVML when a driver is present.

A GPU that is absent is reported as absent (an empty list), never as a zero-filled device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psutil

from shared.gpus import read_gpus

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
    return [
        Device(
            id=f"gpu:{gpu.index}",
            kind="gpu",
            name=gpu.name,
            memory_total_mb=round(gpu.memory_total_bytes / MB),
            memory_free_mb=round(gpu.memory_free_bytes / MB),
            utilisation_pct=gpu.utilization_percent,
            uuid=gpu.uuid,
        )
        for gpu in read_gpus().gpus
    ]


def inventory() -> list[Device]:
    return [cpu_device(), *gpu_devices()]


if __name__ == "__main__":
    import json

    print(json.dumps([d.to_dict() for d in inventory()], indent=2))
