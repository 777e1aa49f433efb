"""Gateway settings (``HEARTH_GATEWAY_*``): the model lifecycle's budget, TTL and pins; /v1/ask's answers."""

from __future__ import annotations

from typing import Literal

import psutil
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.gateway.documents.search import AskOptions
from shared.generators import DEFAULT_GENERATOR


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
    ask_mode: Literal["auto", "extractive", "generative"] = Field(
        "auto", description="/v1/ask: auto generates when the generator model is configured; extractive never."
    )
    ask_generator: str = Field(
        DEFAULT_GENERATOR, pattern=r"^[a-z][a-z0-9_]{0,62}$", description="/v1/ask's text-generation model."
    )
    ask_context_chars: int = Field(6000, ge=200, description="Characters of passages a generation prompt holds.")
    ask_max_tokens: int = Field(256, ge=1, le=1024, description="Default length limit of a generated answer.")
    ask_generation_timeout_s: float = Field(180.0, gt=0, description="Longest a generated answer may take.")
    codec_origins: str = Field(
        "", description="Origins besides the Temporal UI's that may call /v1/codec from a browser (comma-separated)."
    )

    def codec_cors_origins(self, temporal_ui_url: str) -> list[str]:
        """The Temporal UI's origin and the configured extra ones."""
        return [temporal_ui_url, *(o.strip() for o in self.codec_origins.split(",") if o.strip())]

    @property
    def pinned(self) -> set[str]:
        return {m.strip() for m in self.pinned_models.split(",") if m.strip()}

    def ask_options(self) -> AskOptions:
        return AskOptions(
            mode=self.ask_mode,
            generator=self.ask_generator,
            context_chars=self.ask_context_chars,
            max_tokens=self.ask_max_tokens,
            timeout_s=self.ask_generation_timeout_s,
        )
