"""NVIDIA GPUs through NVML (``nvidia-ml-py``), read the same way by every part that needs them.

The gateway's device inventory places models by free memory; the telemetry service exports
utilisation, memory, power and temperature. Without a driver or a device the reading is *absent*,
with NVML's reason, never a zero-filled GPU. A field a device does not support (power on some
boards, utilisation under MIG) is ``None`` for that field alone, not a failed reading.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    uuid: str | None
    memory_total_bytes: float
    memory_used_bytes: float
    memory_free_bytes: float
    utilization_percent: float | None
    power_watts: float | None
    temperature_celsius: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GpuReading:
    present: bool
    reason: str
    gpus: list[GpuSample] = field(default_factory=list)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(read: Callable[[], T], errors: type[BaseException] | tuple[type[BaseException], ...]) -> T | None:
    try:
        return read()
    except errors:
        return None


def _sample(nvml: Any, index: int) -> GpuSample:
    errors = nvml.NVMLError
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    utilisation = _optional(lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu), errors)
    power_mw = _optional(lambda: float(nvml.nvmlDeviceGetPowerUsage(handle)), errors)
    temperature = _optional(lambda: float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)), errors)
    uuid = _optional(lambda: _text(nvml.nvmlDeviceGetUUID(handle)), errors)
    return GpuSample(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        uuid=uuid,
        memory_total_bytes=float(memory.total),
        memory_used_bytes=float(memory.used),
        memory_free_bytes=float(memory.free),
        utilization_percent=utilisation,
        power_watts=power_mw / 1000.0 if power_mw is not None else None,
        temperature_celsius=temperature,
    )


def read_gpus(nvml: Any = None) -> GpuReading:
    """Every NVIDIA GPU NVML sees. ``nvml`` defaults to ``pynvml``; tests pass a stand-in driver."""
    if nvml is None:
        try:
            import pynvml
        except ImportError as exc:
            return GpuReading(False, f"NVML unavailable: {exc}")
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ... (and OSError from ctypes)
        return GpuReading(False, f"NVML unavailable: {exc}")
    try:
        count = nvml.nvmlDeviceGetCount()
        if count == 0:
            return GpuReading(False, "NVML found no NVIDIA GPU")
        gpus = [_sample(nvml, index) for index in range(count)]
        return GpuReading(True, f"{count} NVIDIA GPU(s)", gpus)
    except Exception as exc:  # a device lost mid-read (NVML_ERROR_GPU_IS_LOST) makes the whole reading absent
        return GpuReading(False, f"NVML error: {exc}")
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
