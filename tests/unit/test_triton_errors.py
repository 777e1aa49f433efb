"""Triton's errors as the problems a client sees: an unknown model is 404, a model that fails to
load is a load failure with its reason, even when that reason says "not found"."""

from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from services.gateway.inference.triton import map_error
from shared.errors import BadRequest, NotFound, PermanentFailure, Unavailable

pytestmark = pytest.mark.unit


def error(message: str, status: str = "StatusCode.INTERNAL") -> InferenceServerException:
    return InferenceServerException(msg=message, status=status)


@pytest.mark.parametrize(
    "message",
    [
        "Request for unknown model: 'nope' is not found",
        "failed to load 'nope', failed to poll from model repository",
    ],
)
def test_triton_s_unknown_model_phrasings_are_404(message: str) -> None:
    err = map_error(error(message), "nope")
    assert isinstance(err, NotFound)
    assert err.code == "unknown-model"


def test_grpc_not_found_is_404() -> None:
    assert isinstance(map_error(error("no such thing", "StatusCode.NOT_FOUND"), "nope"), NotFound)


def test_a_model_whose_own_file_is_not_found_is_a_load_failure_not_an_unknown_model() -> None:
    message = (
        "Failed to initialize Python stub: FileNotFoundError: [Errno 2] weights file "
        "'/models/llm/1/model.gguf' not found"
    )
    err = map_error(error(message), "llm")
    assert isinstance(err, PermanentFailure)
    assert "model.gguf" in err.detail


def test_not_ready_and_unreachable_are_retryable() -> None:
    assert isinstance(map_error(error("Request for model 'm' is not ready"), "m"), Unavailable)
    assert isinstance(
        map_error(error("failed to connect to all addresses", "StatusCode.UNAVAILABLE"), "m"), Unavailable
    )


def test_bad_tensors_are_400() -> None:
    err = map_error(error("unexpected shape for input 'X'", "StatusCode.INVALID_ARGUMENT"), "m")
    assert isinstance(err, BadRequest)
