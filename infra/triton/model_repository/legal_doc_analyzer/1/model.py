"""legal_doc_analyzer: contract text in, entities out (rules, gazetteers and jieba segmentation in
``hearth_triton.contracts``; no trained model). See ../README.md for the contract."""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

if str(Path(__file__).resolve().parents[3]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # infra/triton: hearth_triton

from hearth_triton.contracts import ContractRequestError, analyze, parse_params, warm_up
from hearth_triton.params import ModelParams

MODEL_NAME = "legal_doc_analyzer"


class TritonPythonModel:
    def initialize(self, args):
        params = ModelParams(args["model_config"])
        self.variant = params.variant()
        self.version = str(args["model_version"])
        cache = params.get("jieba_cache_dir", "")
        if cache:
            os.environ["HEARTH_JIEBA_CACHE_DIR"] = cache
        started = time.perf_counter()
        warm_up()  # jieba's dictionary and the patterns, so the warm-up request (not a client) pays for them
        pb_utils.Logger.log_info(
            f"{args['model_instance_name']}: variant {self.variant}, warmed up in "
            f"{(time.perf_counter() - started) * 1000:.0f} ms"
        )

    def execute(self, requests):
        # CPU-bound pure Python: requests run one after the other; more instances give parallelism.
        return [self._answer(request) for request in requests]

    def _answer(self, request):
        started = time.perf_counter()
        try:
            text = _string(request, "TEXT", required=True)
            options = parse_params(_string(request, "PARAMS", required=False))
            parsed = time.perf_counter()
            result = analyze(text, options.fields, options.language)
        except ContractRequestError as exc:
            return _error(str(exc), pb_utils.TritonError.INVALID_ARG)
        except Exception as exc:
            pb_utils.Logger.log_error(f"{MODEL_NAME}: {type(exc).__name__}: {exc}")
            return _error(f"analysis failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL)
        done = time.perf_counter()
        result["model"] = MODEL_NAME
        result["version"] = self.version
        result["timings_ms"] = {
            "parse": round((parsed - started) * 1000, 2),
            "analyze": round((done - parsed) * 1000, 2),
            "total": round((done - started) * 1000, 2),
        }
        payload = json.dumps(result, ensure_ascii=False).encode("utf-8")
        return pb_utils.InferenceResponse([pb_utils.Tensor("RESULT", np.array([payload], dtype=np.object_))])


def _string(request, name, *, required):
    """The one UTF-8 string of a BYTES input; None for an absent optional input."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        if required:
            raise ContractRequestError(f"input {name} is required")
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise ContractRequestError(f"{name} must hold exactly one string, not {values.size}")
    value = values[0]
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractRequestError(f"{name} is not valid UTF-8: {exc}") from None


def _error(message, code):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
