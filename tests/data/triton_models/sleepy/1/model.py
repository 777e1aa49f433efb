"""Test model: sleeps the requested milliseconds (at most 5 s) and returns them. Never shipped."""

import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            delay = pb_utils.get_input_tensor_by_name(request, "DELAY_MS").as_numpy().astype(np.float32)
            time.sleep(min(float(delay[0]), 5000.0) / 1000.0)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("SLEPT_MS", delay)]))
        return out
