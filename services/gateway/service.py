"""Platform health: every component's status gathered in one report (no transport here)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

from nats.aio.client import Client as NatsClient
from pydantic import BaseModel

from shared.health import ComponentHealth, ProbeClients, infra_probes, probe_service
from shared.settings import SERVICES, HearthSettings

Overall = Literal["ok", "degraded", "down"]


class ComponentReport(ComponentHealth):
    kind: Literal["infra", "service"]


class HealthReport(BaseModel):
    """``GET /v1/health``: ``down`` if infrastructure is down, ``degraded`` if only a service is."""

    status: Overall
    checked_at: datetime
    components: list[ComponentReport]


class HealthService:
    def __init__(self, settings: HearthSettings, nats: NatsClient) -> None:
        self._settings = settings
        self._nats = nats
        self._clients = ProbeClients.for_settings(
            settings
        )  # one HTTP pool and one Temporal connection for every report

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def report(self) -> HealthReport:
        infra, services = await asyncio.gather(
            asyncio.gather(*(probe(self._settings, self._clients) for probe in infra_probes(self._settings).values())),
            asyncio.gather(*(probe_service(self._nats, name) for name in SERVICES)),
        )
        components = [ComponentReport(kind="infra", **h.model_dump()) for h in infra]
        components += [ComponentReport(kind="service", **h.model_dump()) for h in services]
        if any(c.status != "ok" for c in components if c.kind == "infra"):
            overall: Overall = "down"
        elif any(c.status != "ok" for c in components):
            overall = "degraded"
        else:
            overall = "ok"
        return HealthReport(status=overall, checked_at=datetime.now(UTC), components=components)
