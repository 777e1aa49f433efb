"""Call a service capability over NATS request/reply with typed input and result."""

from __future__ import annotations

import argparse
import asyncio

from shared.bus import Bus
from shared.capabilities import HealthCheck, ServiceHealth, call_capability


async def call(name: str) -> None:
    async with await Bus.connect(name="example-client") as bus:
        # Every service answers <service>.health; later issues add ocr.extract, nlp.analyze, ...
        result = await call_capability(bus, name, HealthCheck(), ServiceHealth, timeout=5)
    print(result.model_dump_json(indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("capability", help="e.g. ocr.health")
    asyncio.run(call(parser.parse_args().capability))


if __name__ == "__main__":
    main()
