"""Composition root of the gateway: the Litestar app and the process around it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine, Sequence
from contextlib import AsyncExitStack
from typing import Any

import structlog
import uvicorn
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from sqlalchemy.ext.asyncio import AsyncEngine
from swagger_ui_bundle import swagger_ui_path

from services.gateway.auth import AccessGuard
from services.gateway.dashboard.routes import dashboard_router
from services.gateway.documents.cipher import DocumentCipher
from services.gateway.documents.generate import ModelGenerator
from services.gateway.documents.handlers import DocumentsController, DocumentServices, ask, search
from services.gateway.documents.handlers import dependencies as document_dependencies
from services.gateway.documents.pipeline import DocumentPipeline
from services.gateway.documents.search import SearchIndex
from services.gateway.documents.store import DocumentStore
from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.governance.authz import AuthzController
from services.gateway.governance.handlers import GovernanceServices, KeysController, audit, audit_verify
from services.gateway.governance.handlers import dependencies as governance_dependencies
from services.gateway.governance.lifecycle import ROUTES as LIFECYCLE_ROUTES
from services.gateway.governance.lifecycle import LifecycleAdmin
from services.gateway.governance.lifecycle import dependencies as lifecycle_dependencies
from services.gateway.handlers import HealthController, asyncapi, dependencies
from services.gateway.inference.handlers import ModelsController, devices, ocr, serve_nats
from services.gateway.inference.handlers import dependencies as inference_dependencies
from services.gateway.inference.lifecycle import Budget, LifecycleManager, TritonMemory
from services.gateway.inference.ocr import MAX_IMAGE_BYTES
from services.gateway.inference.service import ModelService
from services.gateway.inference.state import ModelStateStore
from services.gateway.inference.triton import Triton
from services.gateway.observability import Instrumented
from services.gateway.service import HealthService
from services.gateway.settings import GatewaySettings, OidcSettings
from services.gateway.telemetry.handlers import TelemetryClient, TelemetryController
from services.gateway.telemetry.handlers import dependencies as telemetry_dependencies
from services.gateway.workflows.codec import CodecController, CodecServices, codec_cors
from services.gateway.workflows.codec import dependencies as codec_dependencies
from services.gateway.workflows.handlers import RunsController, WorkflowsController, WorkflowServices
from services.gateway.workflows.handlers import dependencies as workflow_dependencies
from shared import segment
from shared.asyncapi import asyncapi_document
from shared.blobstore import BlobStore
from shared.capabilities import CapabilityRegistry
from shared.classifier import ClassifierStore
from shared.clients import postgres_engine
from shared.crypto.columns import ColumnKeys
from shared.db.tenancy import apply_row_security
from shared.errors import HearthError
from shared.events.authz import PolicyChanged
from shared.events.envelope import Envelope
from shared.identity.apikeys import ApiKeyStore
from shared.identity.audit import AuditLog
from shared.identity.audit_relay import AuditRelay, verify_stream
from shared.identity.authz import ANY_DOMAIN, POLICY_CHANGED, Authorizer, PolicyWatcher, database_enforcer
from shared.identity.oidc import OidcVerifier
from shared.identity.policies import PolicyAdmin
from shared.runtime import ServiceContext, run
from workflows.definitions import load_definitions
from workflows.runs import RunService
from workflows.versions import DefinitionStore

log = structlog.get_logger("gateway")


def create_app(
    health_service: HealthService,
    model_service: ModelService,
    asyncapi_doc: dict[str, Any],
    guard: AccessGuard,
    *,
    workflow_services: WorkflowServices,
    document_services: DocumentServices,
    telemetry: TelemetryClient,
    governance: GovernanceServices | None = None,
    lifecycle: LifecycleAdmin | None = None,
    codec: CodecServices | None = None,
    codec_origins: Sequence[str] = (),
    version: str = "0.1.0",
) -> Litestar:
    """The REST API; dependencies are built by the caller and handed in."""
    # The API docs UI is served from the gateway's own files: no CDN, so it works air-gapped.
    assets = "/schema/assets"
    docs_ui = SwaggerRenderPlugin(
        js_url=f"{assets}/swagger-ui-bundle.js",
        css_url=f"{assets}/swagger-ui.css",
        standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
        path="/",
        favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
    )
    return Litestar(
        route_handlers=[
            HealthController,
            ModelsController,
            WorkflowsController,
            RunsController,
            DocumentsController,
            TelemetryController,
            *([KeysController, audit, audit_verify] if governance else []),
            *([AuthzController] if governance and governance.policies else []),
            *(LIFECYCLE_ROUTES if lifecycle else []),
            *([CodecController] if codec else []),
            search,
            ask,
            devices,
            ocr,
            asyncapi,
            create_static_files_router(path=assets, directories=[swagger_ui_path], include_in_schema=False),
            dashboard_router(),
        ],
        dependencies={
            # Routes make their data decisions (sensitivity, tenant) through the guard's enforcer.
            "access": Provide(lambda: guard, use_cache=True, sync_to_thread=False),
            **dependencies(health_service, asyncapi_doc),
            **inference_dependencies(model_service),
            **workflow_dependencies(workflow_services),
            **document_dependencies(document_services),
            **telemetry_dependencies(telemetry),
            **(governance_dependencies(governance) if governance else {}),
            **(lifecycle_dependencies(lifecycle) if lifecycle else {}),
            **(codec_dependencies(codec) if codec else {}),
        },
        guards=[guard],
        # CORS for the Temporal UI on /v1/codec only; the rest of the API is for same-origin and non-browser clients.
        middleware=[codec_cors(codec_origins)] if codec else [],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Hearth API",
            version=version,
            description="On-premise AI platform. Errors are RFC 9457 problem details.",
            path="/schema",
            render_plugins=[docs_ui],
        ),
        debug=False,
        logging_config=None,  # the runtime's structured JSON logging, not Litestar's own format
        # OCR images and workflow uploads alike; the MiB on top is room for the multipart envelope.
        request_max_body_size=MAX_IMAGE_BYTES + 1024 * 1024,
    )


async def _sweep_idle(models: ModelService, interval_s: float) -> None:
    """Idle unload (the seed's power saving), pre-loading ahead of a forecast busy hour, state saving."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await models.unload_idle()
            await models.preload_forecast()
            await models.list_models()  # measures memory and refreshes the model gauges
        except HearthError as exc:  # Triton down: try again next round
            log.warning("idle sweep skipped", reason=exc.detail)
        await models.flush()  # write-behind of counters and forecast; never on a request's path


async def _access_control(
    ctx: ServiceContext, stack: AsyncExitStack, engine: AsyncEngine, keys: ApiKeyStore
) -> tuple[Authorizer, PolicyAdmin]:
    """The enforcer over the policies in PostgreSQL, kept current by the watcher, and their admin."""
    authorizer = Authorizer(await database_enforcer(engine))
    watcher = PolicyWatcher(ctx.bus.nc, authorizer)
    await watcher.start()
    stack.push_async_callback(watcher.stop)

    async def announce(change: PolicyChanged) -> None:
        tenant = "default" if change.domain == ANY_DOMAIN else change.domain
        await ctx.bus.publish(Envelope.new(POLICY_CHANGED, change, source="hearth/gateway", tenant=tenant))

    return authorizer, PolicyAdmin(authorizer, engine=engine, keys=keys, announce=announce)


def _in_background(stack: AsyncExitStack, loop: Coroutine[Any, Any, None], name: str) -> None:
    """Run ``loop`` as a task until the stack closes, then cancel it and wait for it to end."""
    task = asyncio.create_task(loop, name=name)

    async def _stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(_stop)


def _oidc_verifier(stack: AsyncExitStack) -> OidcVerifier | None:
    """The verifier of the configured OIDC issuer's tokens, or ``None`` (API keys only)."""
    config = OidcSettings().config()
    if config is None:
        return None
    verifier = OidcVerifier(config)
    stack.push_async_callback(verifier.aclose)
    log.info("OIDC tokens accepted", issuer=config.issuer, roles=list(config.roles))
    return verifier


async def _start_http(ctx: ServiceContext, stack: AsyncExitStack) -> None:
    health = HealthService(ctx.settings, ctx.bus.nc)
    stack.push_async_callback(health.aclose)
    engine = postgres_engine(ctx.settings)
    stack.push_async_callback(engine.dispose)
    apply_row_security(engine)  # a request's transactions see its tenant's rows only
    keys = ApiKeyStore(engine)
    audit_log = AuditLog(engine, stream_check=functools.partial(verify_stream, engine, ctx.bus))
    authorizer, policies = await _access_control(ctx, stack, engine, keys)
    guard = AccessGuard(keys, authorizer, audit=audit_log, oidc=_oidc_verifier(stack))
    # Audit entries and keys' last-used times are written behind, in batches, off the request path.
    _in_background(stack, guard.run(), "audit-writer")
    # Only one process relays (an advisory lock); the others' loops wait their turn.
    _in_background(stack, AuditRelay(engine, ctx.bus).run(), "audit-relay")
    triton = Triton(ctx.settings)
    stack.push_async_callback(triton.close)
    gateway_settings = GatewaySettings()
    lifecycle = LifecycleManager(
        memory=TritonMemory(ctx.settings.triton_grpc_port),
        repositories=ctx.settings.triton_repositories,
        budget=Budget(device="cpu", limit_mb=gateway_settings.model_memory_budget_mb),
        idle_ttl_s=gateway_settings.model_idle_ttl_s,
        pinned=gateway_settings.pinned,
    )
    models = ModelService(
        triton, lifecycle, load_timeout_s=gateway_settings.model_load_timeout_s, store=ModelStateStore(engine)
    )
    await models.restore()  # before serving: counts, rollback versions, forecast; cuts a stale canary
    sweeper = asyncio.create_task(_sweep_idle(models, gateway_settings.lifecycle_sweep_s), name="idle-sweeper")

    async def _stop_sweeper() -> None:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
        await models.flush()  # the last counts, on a clean stop

    stack.push_async_callback(_stop_sweeper)
    subscription = await serve_nats(ctx.bus.nc, models)
    stack.push_async_callback(subscription.drain)
    definitions = DefinitionStore(engine)
    workflow_services = WorkflowServices(
        definitions=definitions,
        runs=RunService(ctx.temporal, definitions),
        blobs=await BlobStore.create(ctx.bus.js, ctx.settings),
        read_files=functools.partial(load_definitions, ctx.settings),
    )
    # Document content is sealed under the same AppRole keyring as the blobs (off with it).
    column_keys = ColumnKeys(engine, workflow_services.blobs.keyring)
    cipher = DocumentCipher(engine, column_keys)
    documents = DocumentStore(engine, cipher)
    await asyncio.to_thread(segment.ready)
    index = SearchIndex(
        engine,
        ctx.bus,
        generator=ModelGenerator(models, lifecycle.repositories),
        ask_options=gateway_settings.ask_options(),
        cipher=cipher,
    )
    pipeline = DocumentPipeline(documents, workflow_services.runs, ctx.bus, workflow_services.blobs, index)
    await pipeline.start()
    stack.push_async_callback(pipeline.stop)
    document_services = DocumentServices(
        store=documents,
        pipeline=pipeline,
        blobs=workflow_services.blobs,
        classifier=ClassifierStore(engine, column_keys),
    )
    app = create_app(
        health,
        models,
        asyncapi_document(),
        guard,
        workflow_services=workflow_services,
        document_services=document_services,
        telemetry=TelemetryClient(ctx.bus),
        governance=GovernanceServices(keys=keys, audit=audit_log, policies=policies),
        lifecycle=LifecycleAdmin(engine, workflow_services.blobs, ctx.temporal),
        codec=CodecServices(ctx.codec, ctx.settings.temporal_namespace) if ctx.codec else None,
        codec_origins=gateway_settings.codec_cors_origins(ctx.settings.temporal_ui_url),
    )
    config = uvicorn.Config(
        Instrumented(app, ctx.settings.trace_inference_ratio) if ctx.settings.telemetry_enabled else app,
        host=ctx.settings.bind_host,
        port=ctx.settings.gateway_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # The runtime owns signals: it stops uvicorn through `should_exit`.
        timeout_graceful_shutdown=10,
        **(
            {"ssl_certfile": str(ctx.settings.tls_cert_path), "ssl_keyfile": str(ctx.settings.tls_key_path)}
            if ctx.settings.tls
            else {}
        ),
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(), name="gateway-http")
    while not server.started:
        if task.done():
            task.result()  # raises the bind error, e.g. port in use
            raise RuntimeError("gateway HTTP server exited during start-up")
        await asyncio.sleep(0.05)

    async def _stop() -> None:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(_stop)


def create_registry() -> CapabilityRegistry:
    return CapabilityRegistry(service="gateway")


def main() -> None:
    run(create_registry(), on_start=_start_http)
