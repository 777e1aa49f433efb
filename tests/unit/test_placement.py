from __future__ import annotations

import pytest

from services.gateway.inference.service import LoadRequest, placement_config
from shared.errors import InvalidInput

pytestmark = pytest.mark.unit

SERVED = {"name": "m", "backend": "python", "instance_group": [{"kind": "KIND_CPU", "count": 2}], "parameters": {}}


def test_version_variant_and_gpu_device_become_a_config_override() -> None:
    out = placement_config(SERVED, LoadRequest(version="3", variant="int8", device="gpu:1"))
    assert out["version_policy"] == {"specific": {"versions": [3]}}
    assert out["parameters"]["variant"] == {"string_value": "int8"}
    assert out["instance_group"] == [{"kind": "KIND_GPU", "count": 1, "gpus": [1]}]
    assert SERVED["instance_group"] == [{"kind": "KIND_CPU", "count": 2}]  # the served config is not mutated


def test_cpu_and_bare_gpu_devices() -> None:
    assert placement_config(SERVED, LoadRequest(device="cpu"))["instance_group"] == [{"kind": "KIND_CPU", "count": 1}]
    assert placement_config(SERVED, LoadRequest(device="GPU"))["instance_group"][0]["gpus"] == [0]


@pytest.mark.parametrize(
    "request_", [LoadRequest(version="v2"), LoadRequest(device="npu"), LoadRequest(device="gpu:x")]
)
def test_bad_placements_are_refused_with_the_reason(request_: LoadRequest) -> None:
    with pytest.raises(InvalidInput):
        placement_config(SERVED, request_)
