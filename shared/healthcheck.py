"""``python -m shared.healthcheck <service>``: exit 0 when the service is healthy.

Used by container healthchecks: the gateway is probed over HTTP (liveness), every other service
over NATS (``hearth.svc.<name>.health``).
"""

from __future__ import annotations

import asyncio
import sys

import httpx

from shared.health import probe_services
from shared.settings import SERVICES, get_settings


def check(service: str) -> tuple[bool, str]:
    """Health of one service: (healthy, reason)."""
    settings = get_settings()
    if service == "gateway":
        try:
            resp = httpx.get(f"{settings.gateway_url}/v1/health/live", timeout=3)
        except httpx.HTTPError as exc:
            return False, f"gateway unreachable: {exc}"
        return resp.status_code == 200, f"gateway answered {resp.status_code}"
    health = asyncio.run(probe_services(settings, [service]))[service]
    return health.status == "ok", health.detail or health.status


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SERVICES:
        print(f"usage: python -m shared.healthcheck <{'|'.join(SERVICES)}>", file=sys.stderr)
        return 2
    healthy, reason = check(argv[0])
    print(f"{argv[0]}: {reason}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
