"""A REST client: the platform's health, one line per component."""

from __future__ import annotations

import sys

import httpx

from shared.settings import get_settings
from shared.tls import http_verify


def main() -> int:
    settings = get_settings()
    # The stack's own CA signs the gateway's certificate (README: Transport encryption).
    report = httpx.get(f"{settings.gateway_url}/v1/health", timeout=15, verify=http_verify(settings)).json()
    print(f"platform: {report['status']}")
    for comp in report["components"]:
        detail = f"  ({comp['detail']})" if comp["detail"] else ""
        print(f"  {comp['name']:<11} {comp['status']:<8} {comp['version'] or '-':<8} {comp['latency_ms']} ms{detail}")
    return 0 if report["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
