"""Gateway settings (``HEARTH_GATEWAY_*``): the model lifecycle's budget, TTL and pins."""

from __future__ import annotations

import psutil
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _half_of_ram_mb() -> float:
    return round(psutil.virtual_memory().total / (1024 * 1024) / 2)


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEARTH_GATEWAY_", env_file=".env", extra="ignore")

    model_memory_budget_mb: float = Field(
        default_factory=_half_of_ram_mb, gt=0, description="Memory the loaded models may use on the CPU device."
    )
    model_idle_ttl_s: float = Field(1800.0, ge=0, description="Unload a model unused this long (0 = never).")
    pinned_models: str = Field("", description="Comma-separated models never evicted nor unloaded when idle.")
    lifecycle_sweep_s: float = Field(15.0, gt=0, description="How often idle models are looked for.")
    model_load_timeout_s: float = Field(300.0, gt=0, description="Longest a model load may take.")

    @property
    def pinned(self) -> set[str]:
        return {m.strip() for m in self.pinned_models.split(",") if m.strip()}
