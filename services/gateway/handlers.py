"""HTTP routes of the gateway: parse, call the service layer, map the result. Nothing else."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from litestar.di import Provide

from services.gateway.service import HealthReport, HealthService


class HealthController(Controller):
    path = "/v1/health"
    tags = ["health"]

    @get(
        "/",
        opt={"public": True},
        summary="Health of every component",
        description="Probes NATS, Temporal, OpenBao, PostgreSQL and Triton directly and asks every service over "
        "NATS. 200 when ok or degraded (a service is down), 503 when infrastructure is down. Open without a key.",
    )
    async def health(self, health_service: HealthService) -> Response[HealthReport]:
        report = await health_service.report()
        return Response(report, status_code=503 if report.status == "down" else 200)

    @get("/live", opt={"public": True}, summary="Liveness of the gateway process")
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}


@get("/schema/asyncapi.json", opt={"public": True}, summary="AsyncAPI document of every NATS subject", tags=["schema"])
async def asyncapi(asyncapi_document: dict[str, Any]) -> dict[str, Any]:
    return asyncapi_document


def dependencies(health_service: HealthService, asyncapi_document: dict[str, Any]) -> dict[str, Provide]:
    return {
        "health_service": Provide(lambda: health_service, use_cache=True, sync_to_thread=False),
        "asyncapi_document": Provide(lambda: asyncapi_document, use_cache=True, sync_to_thread=False),
    }
