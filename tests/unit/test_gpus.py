"""NVML readings: absent without a driver, per-field gaps kept as gaps, a lost device never half-read."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from services.gateway.inference import devices
from shared.gpus import read_gpus

pytestmark = pytest.mark.unit


class NVMLError(Exception):
    pass


class StandInNvml:
    """The slice of pynvml's API that shared.gpus calls, over scripted boards."""

    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, boards: list[dict[str, Any]], *, init_error: Exception | None = None) -> None:
        self.boards = boards
        self.init_error = init_error
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.boards)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.boards[index]

    def _field(self, board: dict[str, Any], key: str) -> Any:
        value = board[key]
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlDeviceGetMemoryInfo(self, board: dict[str, Any]) -> Any:
        return self._field(board, "memory")

    def nvmlDeviceGetName(self, board: dict[str, Any]) -> bytes:
        return self._field(board, "name")

    def nvmlDeviceGetUUID(self, board: dict[str, Any]) -> str:
        return self._field(board, "uuid")

    def nvmlDeviceGetUtilizationRates(self, board: dict[str, Any]) -> Any:
        return self._field(board, "util")

    def nvmlDeviceGetPowerUsage(self, board: dict[str, Any]) -> int:
        return self._field(board, "power_mw")

    def nvmlDeviceGetTemperature(self, board: dict[str, Any], sensor: int) -> int:
        return self._field(board, "temp")


GIB = 1024**3


def board(**overrides: Any) -> dict[str, Any]:
    return {
        "memory": SimpleNamespace(total=80 * GIB, used=20 * GIB, free=60 * GIB),
        "name": b"NVIDIA H100 80GB HBM3",
        "uuid": "GPU-1234",
        "util": SimpleNamespace(gpu=37),
        "power_mw": 312_500,
        "temp": 61,
        **overrides,
    }


def test_boards_are_read_with_units_converted() -> None:
    nvml = StandInNvml([board(), board(name="L4", uuid=b"GPU-5678")])
    reading = read_gpus(nvml)
    assert reading.present
    assert reading.reason == "2 NVIDIA GPU(s)"
    first, second = reading.gpus
    assert first.name == "NVIDIA H100 80GB HBM3"
    assert second.name == "L4"
    assert second.uuid == "GPU-5678"
    assert first.power_watts == 312.5
    assert first.temperature_celsius == 61.0
    assert first.utilization_percent == 37.0
    assert first.memory_free_bytes == 60 * GIB
    assert nvml.shutdowns == 1


def test_an_unsupported_field_is_none_for_that_field_only() -> None:
    reading = read_gpus(StandInNvml([board(power_mw=NVMLError("Not Supported"), util=NVMLError("Not Supported"))]))
    assert reading.present
    (gpu,) = reading.gpus
    assert gpu.power_watts is None
    assert gpu.utilization_percent is None
    assert gpu.temperature_celsius == 61.0


def test_no_driver_and_no_board_are_absent_with_the_reason() -> None:
    missing = read_gpus(StandInNvml([], init_error=NVMLError("NVML Shared Library Not Found")))
    assert not missing.present
    assert "Library Not Found" in missing.reason
    assert missing.gpus == []
    empty = read_gpus(StandInNvml([]))
    assert not empty.present
    assert empty.reason == "NVML found no NVIDIA GPU"


def test_a_board_lost_mid_read_makes_the_reading_absent_not_partial() -> None:
    nvml = StandInNvml([board(), board(memory=NVMLError("GPU is lost"))])
    reading = read_gpus(nvml)
    assert not reading.present
    assert "GPU is lost" in reading.reason
    assert reading.gpus == []
    assert nvml.shutdowns == 1


def test_gateway_inventory_places_by_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "read_gpus", lambda: read_gpus(StandInNvml([board()])))
    (gpu,) = devices.gpu_devices()
    assert gpu.id == "gpu:0"
    assert gpu.kind == "gpu"
    assert gpu.memory_total_mb == 80 * 1024
    assert gpu.memory_free_mb == 60 * 1024


def test_this_box_reports_absent_not_zero() -> None:
    reading = read_gpus()
    if reading.present:
        pytest.skip("a GPU is present here")
    assert reading.gpus == []
    assert reading.reason
