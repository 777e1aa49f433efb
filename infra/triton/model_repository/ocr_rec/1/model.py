"""ocr_rec: PP-OCRv4 text-line recogniser (Chinese + English) on ONNX Runtime, batched by Triton.

Input ``LINES`` [batch, 3, 48, W] FP32: line crops resized to height 48, scaled to [-1, 1], zero
padded on the right to width W. Triton's dynamic batcher merges requests of equal W, so callers
pad to a few bucket widths (``hearth_triton.ocr_layout``). Outputs per line: ``TEXT`` (UTF-8
BYTES) and ``CONFIDENCE`` (FP32, mean probability of the kept characters).
"""

import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

if str(Path(__file__).resolve().parents[3]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # infra/triton: hearth_triton

from hearth_triton.params import ModelParams
from hearth_triton.runtime import create_session
from hearth_triton.variants import VariantSpec, model_file, variants_dir
from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode

CHANNELS, HEIGHT = 3, 48
MIN_WIDTH, MAX_WIDTH = 8, 4096


class TritonPythonModel:
    def initialize(self, args):
        params = ModelParams(args["model_config"])
        self.variant = params.variant()
        spec = VariantSpec.from_params(params)
        path = model_file(spec, "rec", self.variant, variants_dir(params.get("hearth.variants_dir", "") or None))
        self.session = create_session(path, args, params)
        self.input_name = self.session.get_inputs()[0].name
        metadata = self.session.get_modelmeta().custom_metadata_map
        if "character" not in metadata:
            raise RuntimeError(f"{path} carries no character dictionary (metadata key 'character')")
        self.decoder = CTCLabelDecode(character=metadata["character"].splitlines())
        pb_utils.Logger.log_info(
            f"{args['model_instance_name']}: variant {self.variant} ({path.name}) on {self.session.get_providers()[0]}"
        )

    def execute(self, requests):
        responses = [None] * len(requests)
        by_width = {}
        for index, request in enumerate(requests):
            lines = pb_utils.get_input_tensor_by_name(request, "LINES").as_numpy()
            problem = _check(lines)
            if problem:
                responses[index] = _error(problem, pb_utils.TritonError.INVALID_ARG)
            else:
                by_width.setdefault(lines.shape[3], []).append((index, lines))
        # The batcher only merges equal shapes, so this is one group unless a caller sent widths
        # the batcher kept apart; each group is one ONNX Runtime run.
        for members in by_width.values():
            batch = np.concatenate([lines for _, lines in members]) if len(members) > 1 else members[0][1]
            try:
                decoded = self.decoder(self.session.run(None, {self.input_name: batch})[0])
            except Exception as exc:
                for index, _ in members:
                    responses[index] = _error(f"recognition failed: {exc}", pb_utils.TritonError.INTERNAL)
                continue
            offset = 0
            for index, lines in members:
                part = decoded[offset : offset + lines.shape[0]]
                offset += lines.shape[0]
                text = np.array([[t.encode("utf-8")] for t, _ in part], dtype=np.object_)
                confidence = np.array([[c] for _, c in part], dtype=np.float32)
                responses[index] = pb_utils.InferenceResponse(
                    [pb_utils.Tensor("TEXT", text), pb_utils.Tensor("CONFIDENCE", confidence)]
                )
        return responses

    def finalize(self):
        self.session = None


def _check(lines):
    if lines.ndim != 4 or lines.shape[1:3] != (CHANNELS, HEIGHT):
        return f"LINES must be [batch, {CHANNELS}, {HEIGHT}, width], got {list(lines.shape)}"
    if not MIN_WIDTH <= lines.shape[3] <= MAX_WIDTH:
        return f"LINES width must be between {MIN_WIDTH} and {MAX_WIDTH}, got {lines.shape[3]}"
    return None


def _error(message, code):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
