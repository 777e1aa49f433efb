"""Model lifecycle: measured memory, a per-device budget with LRU eviction, idle unload, pins.

Memory is measured, not declared: every python-backend model instance runs in its own
``triton_python_backend_stub`` process, whose argv ends with the instance name
(``<model>_<group>_<index>``), so a model's resident memory is the RSS of its stubs. Triton's own
process is measured before a load and after the unload: what it did not give back is reported.
Declared sizes (config parameter ``hearth.memory_mb``) are only the estimate for a model that has
never been loaded here.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import structlog
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

log = structlog.get_logger("gateway.lifecycle")

_INSTANCE = re.compile(r"^(?P<model>.+)_\d+_\d+$")
MB = 1024 * 1024


def repository_config(repositories: list[Path], model: str) -> dict[str, Any] | None:
    """A model's ``config.pbtxt`` as the JSON Triton's load API takes, from the first repository holding it.

    A load override *replaces* the whole config (Triton 2.51), so overrides start from this.
    (The Triton-side twin is ``infra/triton/hearth_triton/repository.py``, in the Triton venv.)
    """
    for repo in repositories:
        path = repo / model / "config.pbtxt"
        if path.exists():
            try:
                message = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
            except text_format.ParseError as exc:
                log.warning("unreadable model config", model=model, path=str(path), error=str(exc))
                return None
            if not message.name:
                message.name = model
            return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))
    return None


def declared_parameters(repositories: list[Path], model: str) -> dict[str, str]:
    """The string ``parameters`` of a model's config.pbtxt."""
    config = repository_config(repositories, model) or {}
    params = config.get("parameters") or {}
    return {k: str(v.get("string_value", "")) for k, v in params.items()}


class TritonMemory:
    """Resident memory of the Triton server and of each model's backend processes (same host)."""

    def __init__(self, grpc_port: int) -> None:
        self._port = grpc_port
        self._proc: psutil.Process | None = None

    def _server(self) -> psutil.Process | None:
        if self._proc is not None and self._proc.is_running():
            return self._proc
        self._proc = None
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] != "tritonserver":
                continue
            try:
                if any(c.laddr and c.laddr.port == self._port for c in proc.net_connections(kind="inet")):
                    self._proc = proc
                    break
            except psutil.Error:
                continue
        return self._proc

    def server_mb(self) -> float | None:
        """RSS of the Triton process itself (None when it runs elsewhere, e.g. another container)."""
        proc = self._server()
        try:
            return proc.memory_info().rss / MB if proc is not None else None
        except psutil.Error:
            return None

    def per_model_mb(self) -> dict[str, float]:
        """RSS of each model's backend stub processes, by model name."""
        proc = self._server()
        if proc is None:
            return {}
        out: dict[str, float] = {}
        try:
            children = proc.children(recursive=True)
        except psutil.Error:
            return {}
        for child in children:
            try:
                argv = child.cmdline()
                if not argv or not argv[0].endswith("triton_python_backend_stub") or len(argv) < 3:
                    continue
                match = _INSTANCE.match(argv[-2])
                if match:
                    out[match["model"]] = out.get(match["model"], 0.0) + child.memory_info().rss / MB
            except psutil.Error:
                continue
        return out


@dataclass
class ModelLife:
    """What the manager knows of one model."""

    # Monotonic; a model first seen (e.g. loaded by someone else) starts its idle clock then.
    last_used: float = field(default_factory=time.monotonic)
    memory_mb: float | None = None  # measured while loaded
    pinned: bool = False
    unloads: int = 0
    last_unload_reason: str | None = None
    retained_after_unload_mb: float | None = None
    server_mb_before_load: float | None = None
    previous_version: str | None = None
    variant: str | None = None
    variant_reason: str | None = None
    device: str | None = None
    in_flight: int = 0  # requests inside Triton now


@dataclass
class Budget:
    """Memory the models of one device may use."""

    device: str
    limit_mb: float


@dataclass
class LifecycleManager:
    """Decides what to unload: LRU eviction to stay within budget, idle unload after a TTL."""

    memory: TritonMemory
    repositories: list[Path]
    budget: Budget
    idle_ttl_s: float
    pinned: set[str] = field(default_factory=set)
    default_estimate_mb: float = 256.0
    models: dict[str, ModelLife] = field(default_factory=dict)

    def life(self, name: str) -> ModelLife:
        life = self.models.get(name)
        if life is None:
            params = declared_parameters(self.repositories, name)
            pinned = name in self.pinned or params.get("hearth.pinned", "").lower() == "true"
            life = self.models[name] = ModelLife(pinned=pinned)
        return life

    def dependencies(self, name: str) -> list[str]:
        """Models ``name`` calls (config parameter ``hearth.depends_on``), loaded before it."""
        declared = declared_parameters(self.repositories, name).get("hearth.depends_on", "")
        return [d.strip() for d in declared.split(",") if d.strip()]

    def touch(self, name: str) -> None:
        """Record a use of ``name`` and of the models it calls (their use is invisible to the gateway)."""
        now = time.monotonic()
        self.life(name).last_used = now
        for dependency in self.dependencies(name):
            self.life(dependency).last_used = now

    def estimate_mb(self, name: str, variant: str | None = None) -> float:
        """Measured memory of the loaded variant, else the declared size of ``variant`` (or the default)."""
        life = self.life(name)
        params = declared_parameters(self.repositories, name)
        variant = variant or life.variant or params.get("hearth.default_variant", "")
        if life.memory_mb is not None and variant == (life.variant or params.get("hearth.default_variant", "")):
            return life.memory_mb
        for key in (f"hearth.memory_mb.{variant}", "hearth.memory_mb"):
            if params.get(key):
                try:
                    return float(params[key])
                except ValueError:
                    break
        return self.default_estimate_mb

    def refresh(self, loaded: set[str]) -> dict[str, float]:
        """Measure every loaded model; returns the measurements."""
        measured = self.memory.per_model_mb()
        for name in loaded:
            if name in measured:
                self.life(name).memory_mb = round(measured[name], 1)
        return measured

    def choose_variant(self, name: str, loaded: set[str]) -> tuple[str | None, str | None]:
        """The variant to load when none was asked for, and why (None: the default, it fits).

        The seed's "automatic memory compression": when the default (full-precision) variant
        cannot fit even after evicting every evictable model, the declared variant that fits
        (smallest first) is loaded instead, and the choice is reported.
        """
        params = declared_parameters(self.repositories, name)
        variants = [v.strip() for v in params.get("hearth.variants", "").split(",") if v.strip()]
        default = params.get("hearth.default_variant") or (variants[0] if variants else None)
        if default is None or len(variants) < 2:
            return None, None
        needed = {d for m in loaded for d in self.dependencies(m)} | set(self.dependencies(name))
        fixed = sum(self.estimate_mb(m) for m in loaded if m != name and (self.life(m).pinned or m in needed))
        available = self.budget.limit_mb - fixed
        if self.estimate_mb(name, default) <= available:
            return None, None
        fitting = sorted((self.estimate_mb(name, v), v) for v in variants if v != default)
        for size, variant in fitting:
            if size <= available:
                reason = (
                    f"{default} needs {self.estimate_mb(name, default):.0f} MB but at most {available:.0f} MB "
                    f"can be freed on {self.budget.device}: loaded {variant} ({size:.0f} MB)"
                )
                return variant, reason
        return None, None

    def busy(self, name: str) -> bool:
        """Requests of ``name`` are inside Triton right now."""
        return self.life(name).in_flight > 0

    def eviction_plan(self, name: str, loaded: set[str], variant: str | None = None) -> list[str]:
        """Models to unload so that ``name`` fits: idle ones least recently used first, never pinned.

        A model with requests in flight goes only when evicting every idle one is not enough:
        Triton lets those requests finish, but their model would be loaded again at once.
        """
        self.refresh(loaded)
        used = sum(self.estimate_mb(m) for m in loaded if m != name)
        need = self.estimate_mb(name, variant)
        plan: list[str] = []
        # A model another loaded model calls is not evicted from under it.
        needed = {d for m in loaded for d in self.dependencies(m)} | set(self.dependencies(name))
        candidates = sorted(
            (m for m in loaded if m != name and m not in needed and not self.life(m).pinned),
            key=lambda m: (self.busy(m), self.life(m).last_used),
        )
        for victim in candidates:
            if used + need <= self.budget.limit_mb:
                break
            if self.busy(victim):
                log.info(
                    "evicting a model with requests in flight", model=victim, in_flight=self.life(victim).in_flight
                )
            plan.append(victim)
            used -= self.estimate_mb(victim)
        if used + need > self.budget.limit_mb:
            log.warning(
                "model does not fit the memory budget even after eviction",
                model=name,
                need_mb=need,
                used_mb=round(used, 1),
                budget_mb=self.budget.limit_mb,
            )
        return plan

    def idle(self, loaded: set[str]) -> list[str]:
        """Loaded, unpinned models not used for ``idle_ttl_s`` (0 disables idle unload)."""
        if self.idle_ttl_s <= 0:
            return []
        now = time.monotonic()
        idle = {
            m
            for m in loaded
            if not self.life(m).pinned and not self.busy(m) and now - self.life(m).last_used >= self.idle_ttl_s
        }
        # Never unload a model that a model staying loaded still calls.
        while True:
            staying = loaded - idle
            needed = {d for m in staying for d in self.dependencies(m)}
            if not idle & needed:
                break
            idle -= needed
        # Callers before the models they call.
        return sorted(idle, key=lambda m: any(m in self.dependencies(o) for o in idle))

    def before_load(self, name: str) -> None:
        self.life(name).server_mb_before_load = self.memory.server_mb()

    def after_unload(self, name: str, reason: str) -> None:
        life = self.life(name)
        life.unloads += 1
        life.last_unload_reason = reason
        life.memory_mb = None
        before, after = life.server_mb_before_load, self.memory.server_mb()
        if before is not None and after is not None:
            life.retained_after_unload_mb = round(max(0.0, after - before), 1)
            if life.retained_after_unload_mb > 0:
                log.info("triton kept memory after unload", model=name, retained_mb=life.retained_after_unload_mb)
