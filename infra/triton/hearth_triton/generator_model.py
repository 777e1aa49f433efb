"""The ``text_generator`` Triton model: a prompt in, generated text out (llama.cpp, user weights).

``hearth models add-generator`` writes the model's directory into the user model repository:
a ``config.pbtxt`` naming the weights and a ``1/model.py`` that imports this class. Inputs:
``PROMPT`` (one string), optional ``SYSTEM`` (one string), ``MAX_TOKENS`` (INT32), ``TEMPERATURE``
(FP32); outputs ``TEXT`` and ``USAGE`` (JSON: token counts, why it stopped, the weights' file and
digest). A request the model cannot serve (empty prompt, too long for the context, limits) is
answered with INVALID_ARG and the reason; the other requests of the batch are unaffected.
"""

import json
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from hearth_triton.generation import GenerationRequestError, Generator, GeneratorConfig
from hearth_triton.params import ModelParams


class TritonPythonModel:
    def initialize(self, args):
        params = ModelParams(args["model_config"])
        self.name = params.model_name
        self.version = str(args["model_version"])
        gpu = args.get("model_instance_kind") == "GPU"
        config = GeneratorConfig(
            weights=Path(params.get("weights")),
            n_ctx=params.get_int("n_ctx", 4096, minimum=64),
            n_threads=params.get_int("n_threads", 0, minimum=0),
            # Every layer on the GPU for a GPU instance (needs a CUDA build of llama-cpp-python).
            n_gpu_layers=params.get_int("n_gpu_layers", -1 if gpu else 0, minimum=-1),
            seed=params.get_int("seed", 0, minimum=0),
            default_max_tokens=params.get_int("default_max_tokens", 256, minimum=1),
            max_tokens_limit=params.get_int("max_tokens_limit", 1024, minimum=1),
            max_seconds=params.get_float("max_seconds", 120.0),
        )
        self.weights = {
            "file": config.weights.name,
            "sha256": params.get("weights_sha256", "") or None,
        }
        started = time.perf_counter()
        self.generator = Generator(config)
        pb_utils.Logger.log_info(
            f"{args['model_instance_name']}: {config.weights} loaded in "
            f"{(time.perf_counter() - started) * 1000:.0f} ms (context {config.n_ctx}, "
            f"chat template: {self.generator.chat})"
        )

    def execute(self, requests):
        # llama.cpp holds one context: requests are generated one after the other.
        return [self._answer(request) for request in requests]

    def _answer(self, request):
        try:
            prompt = _string(request, "PROMPT", required=True)
            system = _string(request, "SYSTEM", required=False)
            max_tokens = _number(request, "MAX_TOKENS")
            temperature = _number(request, "TEMPERATURE")
            result = self.generator.generate(
                prompt,
                system=system,
                max_tokens=int(max_tokens) if max_tokens is not None else None,
                temperature=float(temperature) if temperature is not None else 0.0,
            )
        except GenerationRequestError as exc:
            return _error(str(exc), pb_utils.TritonError.INVALID_ARG)
        except Exception as exc:
            pb_utils.Logger.log_error(f"{self.name}: {type(exc).__name__}: {exc}")
            return _error(f"generation failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL)
        text = result.pop("text")
        usage = {**result, "model": self.name, "version": self.version, "weights": self.weights}
        return pb_utils.InferenceResponse(
            [
                pb_utils.Tensor("TEXT", np.array([text.encode("utf-8")], dtype=np.object_)),
                pb_utils.Tensor("USAGE", np.array([json.dumps(usage).encode("utf-8")], dtype=np.object_)),
            ]
        )


def _string(request, name, *, required):
    """The one UTF-8 string of a BYTES input; None for an absent optional input."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        if required:
            raise GenerationRequestError(f"input {name} is required")
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise GenerationRequestError(f"{name} must hold exactly one string, not {values.size}")
    value = values[0]
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GenerationRequestError(f"{name} is not valid UTF-8: {exc}") from None


def _number(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise GenerationRequestError(f"{name} must hold exactly one number, not {values.size}")
    return values[0].item()


def _error(message, code):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
