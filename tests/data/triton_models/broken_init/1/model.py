"""Test model whose initialisation fails: the gateway must report its state and the reason."""


class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("weights file is corrupt (test model)")

    def execute(self, requests):
        raise AssertionError("never reached")
