"""Model state and inference through Triton (no transport here).

A model that is not loaded is loaded on its first request; the cold start is measured and
reported in ``GET /v1/models``. Request counts, errors and last use are kept per model.

With a ``ModelStateStore`` that state (and the rollback version and the forecast) survives a
gateway restart: it is read once by ``restore`` and written behind by ``flush``. A canary running
when the gateway stops is cancelled at the next start; the version it was tested against serves.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import structlog
from opentelemetry import trace
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from services.gateway.inference.canary import Canary, CanaryRequest, CanaryState
from services.gateway.inference.forecast import ModelRate, RateForecaster
from services.gateway.inference.kserve import InferRequest, InferResponse, to_array, to_tensor
from services.gateway.inference.lifecycle import LifecycleManager, repository_config
from services.gateway.inference.state import CanaryMarker, ModelStateStore, PersistedModel
from services.gateway.inference.triton import Triton
from shared.errors import BadRequest, Conflict, HearthError, InvalidInput, NotFound, Unavailable
from shared.metrics import MODEL_DURATION, MODEL_LOADED, MODEL_MEMORY, MODEL_REQUESTS
from shared.metrics import enabled as metrics_enabled
from shared.tracing import get_tracer

log = structlog.get_logger("gateway.models")
_tracer = get_tracer(__name__)


class LoadRequest(BaseModel):
    """How to load: a version (hot switch), a variant (e.g. int8) and a device (cpu, gpu:0)."""

    version: str | None = None
    variant: str | None = None
    device: str | None = None


class ModelState(BaseModel):
    """One model as ``GET /v1/models`` shows it."""

    name: str
    state: str  # READY, UNAVAILABLE, LOADING, UNLOADING or "" (in the repository, not loaded)
    reason: str | None = None
    versions: list[str] = []
    requests: int = 0
    errors: int = 0
    last_used: datetime | None = None
    cold_start_ms: float | None = None
    memory_mb: float | None = None
    """Measured resident memory of the model's backend processes while loaded."""
    pinned: bool = False
    serving_version: str | None = None
    previous_version: str | None = None
    variant: str | None = None
    variant_reason: str | None = None
    """Why a variant other than the default was loaded (memory), when it was chosen automatically."""
    device: str | None = None
    unloads: int = 0
    last_unload_reason: str | None = None
    retained_after_unload_mb: float | None = None
    """Memory Triton's own process kept after the last unload (measured)."""
    in_flight: int = 0
    """Requests of this model inside Triton now (a busy model is evicted last, never unloaded as idle)."""
    canary: CanaryState | None = None
    """The running (or last) canary release of this model."""
    forecast_next_hour: float = 0.0
    """Requests expected in the coming hour (EWMA per hour of the week); drives pre-loading."""


@dataclass
class _Stats:
    requests: int = 0
    errors: int = 0
    last_used: datetime | None = None
    cold_start_ms: float | None = None


class ModelService:
    def __init__(
        self,
        triton: Triton,
        lifecycle: LifecycleManager,
        *,
        forecaster: RateForecaster | None = None,
        load_timeout_s: float = 300.0,
        store: ModelStateStore | None = None,
    ) -> None:
        self._triton = triton
        self._lifecycle = lifecycle
        self._forecaster = forecaster or RateForecaster()
        self._canaries: dict[str, Canary] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._stats: dict[str, _Stats] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._control = asyncio.Lock()  # loads and unloads one at a time: budgets stay consistent
        self._load_timeout_s = load_timeout_s
        self._store = store
        self._written: dict[str, dict[str, Any]] = {}  # what the store holds, to write only changes
        self._flushing = asyncio.Lock()

    def _stat(self, name: str) -> _Stats:
        return self._stats.setdefault(name, _Stats())

    def snapshot(self) -> dict[str, PersistedModel]:
        """The state a restart keeps, per model (in memory only; ``flush`` writes it)."""
        out: dict[str, PersistedModel] = {}
        for name in sorted(set(self._stats) | set(self._lifecycle.models) | set(self._forecaster.models)):
            stat = self._stats.get(name) or _Stats()
            life = self._lifecycle.models.get(name)
            rate = self._forecaster.models.get(name)
            canary = self._canaries.get(name)
            out[name] = PersistedModel(
                previous_version=life.previous_version if life else None,
                variant=life.variant if life else None,
                device=life.device if life else None,
                requests=stat.requests,
                errors=stat.errors,
                last_used=stat.last_used,
                cold_start_ms=stat.cold_start_ms,
                rate=ModelRate(list(rate.slots), rate.current_slot, rate.current_count) if rate else None,
                canary=(
                    CanaryMarker(canary.baseline_version, canary.canary_version, canary.request.share)
                    if canary is not None and canary.status == "running"
                    else None
                ),
            )
        return out

    async def flush(self) -> None:
        """Write the models whose state changed since the last write (no-op without a store)."""
        if self._store is None:
            return
        async with self._flushing:
            blank = PersistedModel().to_json()
            changed: dict[str, PersistedModel] = {}
            documents: dict[str, dict[str, Any]] = {}
            for name, model in self.snapshot().items():
                document = model.to_json()
                if self._written.get(name, blank) != document:
                    changed[name], documents[name] = model, document
            if not changed:
                return
            try:
                await self._store.save(changed)
            except (SQLAlchemyError, OSError) as exc:  # PostgreSQL away: the next round writes it
                log.warning("model state not saved", error=str(exc), models=sorted(changed))
                return
            self._written |= documents

    def _flush_soon(self) -> None:
        """Write after a version change without making the caller (maybe a request) wait for it."""
        if self._store is None:
            return
        task = asyncio.create_task(self.flush())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def restore(self) -> None:
        """Take over the stored state (once, before serving); cancel a canary a restart cut short."""
        if self._store is None:
            return
        try:
            stored = await self._store.load()
        except (SQLAlchemyError, OSError) as exc:
            log.error("model state could not be read; starting without it", error=str(exc))
            return
        for name, model in stored.items():
            life = self._lifecycle.life(name)
            life.previous_version, life.variant, life.device = model.previous_version, model.variant, model.device
            self._stats[name] = _Stats(model.requests, model.errors, model.last_used, model.cold_start_ms)
            if model.rate is not None:
                self._forecaster.models[name] = model.rate
            self._written[name] = model.to_json()
        for name, model in stored.items():
            if model.canary is not None:
                await self._cancel_canary(name, model.canary)
        log.info("model state restored", models=len(stored))
        await self.flush()

    async def _cancel_canary(self, name: str, marker: CanaryMarker) -> None:
        # Triton still serves both versions (unversioned requests would reach the newer one): serve
        # only the baseline again. The baseline is passed as serving, so previous_version stays.
        baseline = marker.baseline_version
        try:
            async with self._control:
                await self._load_locked(name, LoadRequest(version=baseline), baseline)
            reason = f"cancelled: the gateway restarted during the canary; version {baseline} serves"
        except HearthError as exc:
            reason = f"cancelled by a gateway restart, but version {baseline} could not be reloaded: {exc.detail}"
            log.error("canary cancel could not reload the baseline", model=name, error=exc.detail)
        request = CanaryRequest(version=marker.canary_version, share=marker.share)
        self._canaries[name] = Canary(baseline_version=baseline, request=request, status="cancelled", reason=reason)
        log.warning(
            "canary cancelled by a gateway restart", model=name, baseline=baseline, canary=marker.canary_version
        )

    async def list_models(self) -> list[ModelState]:
        by_name: dict[str, ModelState] = {}
        ready_versions: dict[str, list[int]] = {}
        for entry in await self._triton.index():
            name = entry["name"]
            state = by_name.get(name) or ModelState(name=name, state=entry.get("state", ""))
            version = str(entry.get("version") or "")
            if version:
                state.versions.append(version)
            if entry.get("state") == "READY":
                state.state = "READY"
                state.reason = None
                if version.isdigit():
                    ready_versions.setdefault(name, []).append(int(version))
            elif state.state != "READY":
                state.state = entry.get("state", "") or state.state
                state.reason = entry.get("reason") or state.reason
            by_name[name] = state
        loaded = {n for n, s in by_name.items() if s.state == "READY"}
        self._lifecycle.refresh(loaded)
        for name, state in by_name.items():
            stat = self._stats.get(name)
            if stat is not None:
                state.requests, state.errors = stat.requests, stat.errors
                state.last_used, state.cold_start_ms = stat.last_used, stat.cold_start_ms
            life = self._lifecycle.life(name)
            state.memory_mb = life.memory_mb if name in loaded else None
            state.pinned, state.unloads, state.in_flight = life.pinned, life.unloads, life.in_flight
            state.variant, state.device = life.variant, life.device
            state.variant_reason = life.variant_reason
            served = ready_versions.get(name)
            state.serving_version = str(max(served)) if served else None
            state.previous_version = life.previous_version
            state.forecast_next_hour = round(self._forecaster.forecast(name), 1)
            canary = self._canaries.get(name)
            state.canary = canary.state() if canary is not None else None
            if canary is not None and canary.status == "running":
                state.serving_version = canary.baseline_version  # the canary gets only its share
            state.last_unload_reason, state.retained_after_unload_mb = (
                life.last_unload_reason,
                life.retained_after_unload_mb,
            )
        _export_model_gauges([by_name[n] for n in sorted(loaded)])
        return [by_name[n] for n in sorted(by_name)]

    async def _loaded(self) -> set[str]:
        return {e["name"] for e in await self._triton.index() if e.get("state") == "READY"}

    async def get_model(self, name: str) -> ModelState:
        for model in await self.list_models():
            if model.name == name:
                return model
        raise NotFound(f"model {name!r} is not in the repository", code="unknown-model")

    async def load(self, name: str, request: LoadRequest | None = None) -> ModelState:
        """Load ``name`` (evicting least-recently-used models if the budget needs it).

        With a version, variant or device the model is (re)loaded with a config override.
        Triton keeps serving the old version until the new one is ready, then moves traffic and
        unloads the old one: a hot switch without failed requests.
        """
        current = await self.get_model(name)  # 404 for a name the repository does not have
        async with self._control:
            await self._load_locked(name, request or LoadRequest(), current.serving_version)
        self._flush_soon()
        return await self.get_model(name)

    async def _load_locked(self, name: str, request: LoadRequest, serving_version: str | None) -> None:
        """The load itself; the caller holds the control lock. Dependencies are loaded first."""
        for dependency in self._lifecycle.dependencies(name):
            if dependency not in await self._loaded():
                await self._load_locked(dependency, LoadRequest(), None)
        loaded = await self._loaded()
        reason = None
        if request.variant is None and name not in loaded:
            chosen, reason = self._lifecycle.choose_variant(name, loaded)
            if chosen is not None:
                request = request.model_copy(update={"variant": chosen})
                log.info("variant chosen by memory", model=name, variant=chosen, reason=reason)
        for victim in self._lifecycle.eviction_plan(name, loaded, request.variant):
            await self._unload(victim, reason=f"evicted to make room for {name}")
        self._lifecycle.before_load(name)
        override = None
        if request.version or request.variant or request.device:
            # An override replaces the whole config: start from the repository's config.pbtxt,
            # else from what Triton serves.
            base = repository_config(self._lifecycle.repositories, name)
            if base is None:
                if name not in loaded:
                    await self._triton.load(name)
                base = await self._triton.config(name)
            override = placement_config(base, request)
        started = time.perf_counter()
        await self._triton.load(name, override)
        life = self._lifecycle.life(name)
        if request.version and serving_version and request.version != serving_version:
            life.previous_version = serving_version
        life.variant = request.variant or life.variant
        life.variant_reason = reason
        life.device = request.device or life.device
        self._stat(name).cold_start_ms = round((time.perf_counter() - started) * 1000, 1)
        self._lifecycle.touch(name)
        log.info("model loaded", model=name, cold_start_ms=self._stat(name).cold_start_ms)

    async def start_canary(self, name: str, request: CanaryRequest) -> ModelState:
        """Serve ``request.version`` beside the current version to a share of the traffic."""
        current = await self.get_model(name)
        if current.serving_version is None:
            await self.load(name)
            current = await self.get_model(name)
        baseline = current.serving_version
        if baseline is None or baseline == request.version:
            raise Conflict(f"{name} must be serving another version than {request.version} to start a canary")
        running = self._canaries.get(name)
        if running is not None and running.status == "running":
            raise Conflict(f"{name} already has a canary of version {running.canary_version} running")
        base = repository_config(self._lifecycle.repositories, name) or await self._triton.config(name)
        both = dict(base) | {
            "version_policy": {"specific": {"versions": sorted({int(baseline), int(request.version)})}}
        }
        async with self._control:
            await self._triton.load(name, both)
        self._canaries[name] = Canary(baseline_version=baseline, request=request)
        self._flush_soon()  # the marker a restart needs to cancel it
        log.info("canary started", model=name, baseline=baseline, canary=request.version, share=request.share)
        return await self.get_model(name)

    def _canary_version(self, name: str) -> tuple[Canary | None, str]:
        canary = self._canaries.get(name)
        if canary is None or canary.status != "running":
            return None, ""
        return canary, canary.pick()

    def _canary_record(self, name: str, canary: Canary | None, version: str, ok: bool, started: float) -> None:
        if canary is None:
            return
        canary.record(version, ok, (time.perf_counter() - started) * 1000)
        if canary.status == "running" and canary.verdict() != "running":
            task = asyncio.create_task(self._finish_canary(name, canary))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _finish_canary(self, name: str, canary: Canary) -> None:
        keep = canary.canary_version if canary.status == "promoted" else canary.baseline_version
        request = LoadRequest(version=keep)
        log.info("canary finished", model=name, verdict=canary.status, reason=canary.reason, serving=keep)
        life = self._lifecycle.life(name)
        earlier = life.previous_version
        try:
            await self.load(name, request)
        except HearthError as exc:
            log.error("canary verdict could not be applied", model=name, error=exc.detail)
            return
        # Promoted: rollback returns to the baseline. Rolled back: the canary never served alone.
        life.previous_version = canary.baseline_version if canary.status == "promoted" else earlier
        self._flush_soon()

    async def rollback(self, name: str) -> ModelState:
        """Serve the version that served before the last switch."""
        life = self._lifecycle.life(name)
        if life.previous_version is None:
            raise Conflict(f"{name} has no earlier version to roll back to")
        return await self.load(name, LoadRequest(version=life.previous_version))

    async def unload(self, name: str, reason: str = "unloaded by an administrator") -> ModelState:
        await self.get_model(name)
        async with self._control:
            await self._unload(name, reason)
        self._flush_soon()
        return await self.get_model(name)

    async def _unload(self, name: str, reason: str) -> None:
        self._lifecycle.life(name).last_unload_reason = reason  # visible as soon as the state changes
        await self._triton.unload(name)
        # Triton unloads in the background; measure once the model's processes are gone.
        deadline = time.monotonic() + 15
        while name in self._lifecycle.memory.per_model_mb() and time.monotonic() < deadline:  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.1)
        self._lifecycle.after_unload(name, reason)
        log.info("model unloaded", model=name, reason=reason)

    async def preload_forecast(self) -> list[str]:
        """Load models whose forecast says a busy hour is coming, if they fit without evicting anything."""
        loaded = await self._loaded()
        started = []
        for name in self._forecaster.to_preload(loaded):
            if self._lifecycle.eviction_plan(name, loaded):
                continue  # pre-loading never pushes out a model in use
            await self.load(name)
            log.info("model pre-loaded for its forecast peak", model=name, forecast=self._forecaster.forecast(name))
            started.append(name)
            loaded.add(name)
        return started

    async def unload_idle(self) -> list[str]:
        """Unload every model idle for longer than the TTL (pinned ones never)."""
        async with self._control:
            idle = self._lifecycle.idle(await self._loaded())
            for name in idle:
                await self._unload(name, reason=f"idle for {self._lifecycle.idle_ttl_s:.0f}s")
        return idle

    async def _ensure_loaded(self, name: str) -> dict[str, Any]:
        try:
            return await self._triton.metadata(name)
        except Unavailable as exc:
            if exc.code != "model-not-ready":
                raise
        except NotFound:
            pass
        lock = self._loading.setdefault(name, asyncio.Lock())
        async with lock:  # concurrent first requests trigger one load
            try:
                return await self._triton.metadata(name)
            except (Unavailable, NotFound):
                await asyncio.wait_for(self.load(name), self._load_timeout_s)
            return await self._triton.metadata(name)

    def _count_request(self, name: str) -> _Stats:
        stat = self._stat(name)
        stat.requests += 1
        stat.last_used = datetime.now(UTC)
        self._lifecycle.touch(name)
        self._forecaster.record(name)
        return stat

    async def _call_loaded(
        self,
        name: str,
        inputs: dict[str, np.ndarray[Any, Any]],
        outputs: list[str],
        *,
        timeout_s: float | None,
        request_id: str = "",
    ) -> tuple[dict[str, np.ndarray[Any, Any]], str]:
        """``_call_triton``, loading the model again when it went away since it was checked.

        An eviction or idle unload can run between ``_ensure_loaded`` and the request, and a restarted
        Triton has forgotten every model while the cached metadata still says it is there; Triton
        then answers "unknown model", which must not reach the caller as a 404.
        """
        try:
            return await self._call_triton(name, inputs, outputs, timeout_s=timeout_s, request_id=request_id)
        except (NotFound, Unavailable) as err:
            if isinstance(err, Unavailable) and err.code != "model-not-ready":
                raise
            log.info("model went away under a request; loading it again", model=name, reason=err.detail)
            self._triton.forget(name)  # its cached metadata is what said it was there
            await self._ensure_loaded(name)
            return await self._call_triton(name, inputs, outputs, timeout_s=timeout_s, request_id=request_id)

    async def _call_triton(
        self,
        name: str,
        inputs: dict[str, np.ndarray[Any, Any]],
        outputs: list[str],
        *,
        timeout_s: float | None,
        request_id: str = "",
    ) -> tuple[dict[str, np.ndarray[Any, Any]], str]:
        """One inference; during a canary it goes to the version the split picks, and counts for it."""
        canary, version = self._canary_version(name)
        started = time.perf_counter()
        life = self._lifecycle.life(name)
        life.in_flight += 1  # eviction and idle unload leave a busy model alone
        try:
            if trace.get_current_span().is_recording():  # a dropped trace gets no client span either
                with _tracer.start_as_current_span(f"triton {name}", kind=trace.SpanKind.CLIENT) as span:
                    span.set_attribute("hearth.model", name)
                    answer = await self._triton.infer(
                        name, inputs, outputs, timeout_s=timeout_s, request_id=request_id, model_version=version
                    )
                    span.set_attribute("hearth.model_version", answer[1] or "")
            else:
                answer = await self._triton.infer(
                    name, inputs, outputs, timeout_s=timeout_s, request_id=request_id, model_version=version
                )
        except HearthError as err:
            self._canary_record(name, canary, version, err.status < 500, started)
            raise
        finally:
            life.in_flight -= 1
        self._canary_record(name, canary, version, True, started)
        return answer

    async def infer(
        self,
        name: str,
        request: InferRequest,
        *,
        raw_inputs: dict[str, bytes] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[InferResponse, dict[str, np.ndarray[Any, Any]]]:
        """KServe v2 inference; also returns the output arrays (for binary-extension replies)."""
        stat = self._count_request(name)
        raw_inputs = raw_inputs or {}
        started = time.perf_counter()
        ok = False
        try:
            meta = await self._ensure_loaded(name)
            arrays = {t.name: to_array(t, meta["inputs"], raw_inputs.get(t.name)) for t in request.inputs}
            wanted = [o.name for o in request.outputs] or list(meta["outputs"])
            unknown = [o for o in wanted if o not in meta["outputs"]]
            if unknown:
                raise BadRequest(f"unknown output(s) {unknown}; the model has: {', '.join(meta['outputs'])}")
            results, version = await self._call_loaded(
                name, arrays, wanted, timeout_s=timeout_s, request_id=request.id or ""
            )
            ok = True
        except Exception:
            stat.errors += 1
            raise
        finally:
            _observe(name, ok, started)
        outputs = [to_tensor(o, meta["outputs"][o]["datatype"], results[o]) for o in wanted]
        response = InferResponse(model_name=name, model_version=version or None, id=request.id, outputs=outputs)
        return response, results

    async def infer_arrays(
        self, name: str, inputs: dict[str, np.ndarray[Any, Any]], outputs: list[str], *, timeout_s: float | None = None
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Typed callers inside the gateway (e.g. OCR): numpy in, numpy out, same accounting."""
        stat = self._count_request(name)
        started = time.perf_counter()
        ok = False
        try:
            await self._ensure_loaded(name)
            results, _ = await self._call_loaded(name, inputs, outputs, timeout_s=timeout_s)
            ok = True
        except Exception:
            stat.errors += 1
            raise
        finally:
            _observe(name, ok, started)
        return results


def _observe(name: str, ok: bool, started: float) -> None:
    if not metrics_enabled():
        return
    MODEL_REQUESTS.labels(name, "ok" if ok else "error").inc()
    MODEL_DURATION.labels(name).observe(time.perf_counter() - started)


def _export_model_gauges(loaded: list[ModelState]) -> None:
    """``hearth_model_loaded`` / ``hearth_model_memory_bytes`` as of this listing (replacing the last)."""
    MODEL_LOADED.clear()
    MODEL_MEMORY.clear()
    for state in loaded:
        device = state.device or "cpu"
        MODEL_LOADED.labels(state.name, state.serving_version or "", state.variant or "default", device).set(1)
        if state.memory_mb is not None:
            MODEL_MEMORY.labels(state.name, device).set(state.memory_mb * 1024 * 1024)


def placement_config(config: dict[str, Any], request: LoadRequest) -> dict[str, Any]:
    """The served config with the requested version, variant and device applied."""
    out = dict(config)
    if request.version:
        if not request.version.isdigit():
            raise InvalidInput(f"version must be a number, not {request.version!r}")
        out["version_policy"] = {"specific": {"versions": [int(request.version)]}}
    if request.variant:
        params = dict(out.get("parameters") or {})
        params["variant"] = {"string_value": request.variant}
        out["parameters"] = params
    if request.device:
        device = request.device.lower()
        if device == "cpu":
            group: dict[str, Any] = {"kind": "KIND_CPU", "count": 1}
        elif device.startswith("gpu"):
            index = device.partition(":")[2] or "0"
            if not index.isdigit():
                raise InvalidInput(f"device must be cpu or gpu[:N], not {request.device!r}")
            group = {"kind": "KIND_GPU", "count": 1, "gpus": [int(index)]}
        else:
            raise InvalidInput(f"device must be cpu or gpu[:N], not {request.device!r}")
        out["instance_group"] = [group]
    return out
