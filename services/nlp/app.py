"""Composition root of the nlp service.

Its capabilities arrive with the issue named in the package docstring; until then the service
runs, answers health over NATS and holds its Temporal worker, and claims no work it cannot do.
"""

from __future__ import annotations

from shared.capabilities import CapabilityRegistry
from shared.runtime import run


def create_registry() -> CapabilityRegistry:
    return CapabilityRegistry(service="nlp")


def main() -> None:
    run(create_registry())
