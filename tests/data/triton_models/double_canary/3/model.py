"""Test model version that fails every request: a bad release for the canary test to roll back."""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse(error=pb_utils.TritonError("version 3 is a broken release")) for _ in requests
        ]
