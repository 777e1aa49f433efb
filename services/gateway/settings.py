"""Gateway settings (``HEARTH_GATEWAY_*``): the model lifecycle's budget, TTL and pins; /v1/ask's answers.

``HEARTH_OIDC_*``: the optional OIDC identity provider whose access tokens the gateway accepts.
"""

from __future__ import annotations

from typing import Literal

import psutil
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.gateway.documents.search import AskOptions
from shared.generators import DEFAULT_GENERATOR
from shared.identity.oidc import ASYMMETRIC, OidcConfig


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


def _listed(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


class OidcSettings(BaseSettings):
    """OIDC access tokens beside the API keys; off while ``issuer`` is empty."""

    model_config = SettingsConfigDict(env_prefix="HEARTH_OIDC_", env_file=".env", extra="ignore")

    issuer: str = Field("", description="Issuer URL (the tokens' iss); empty: OIDC off, API keys only.")
    audience: str = Field("", description="Accepted token audiences (aud), comma-separated; required with an issuer.")
    jwks_url: str = Field("", description="The issuer's JWKS; empty: discovered from its openid-configuration.")
    algorithms: str = Field(
        "RS256,ES256,EdDSA", description=f"Accepted signature algorithms, comma-separated, of {', '.join(ASYMMETRIC)}."
    )
    leeway_s: float = Field(30.0, ge=0, le=600, description="Clock skew allowed on exp, nbf and iat.")
    tenant_claim: str = Field("hearth_tenant", description="Claim naming the tenant; a token without it is refused.")
    roles_claim: str = Field("roles", description="Claim (or dotted path, e.g. realm_access.roles) of the roles.")
    clearance_claim: str = Field("hearth_clearance", description="Claim of the clearance (public ... secret).")
    default_clearance: str = Field("public", description="Clearance of a token without the clearance claim.")
    max_clearance: str = Field("confidential", description="Highest clearance a token may get; higher is cut to it.")
    roles: str = Field(
        "tenant_admin,user",
        description="Roles a token may carry, most privileged first (a token's role: the first it holds); "
        "admin only when listed.",
    )
    jwks_ttl_s: float = Field(300.0, gt=0, description="How long fetched signing keys are used before a refetch.")
    refresh_interval_s: float = Field(
        30.0, ge=0, description="Fewest seconds between JWKS fetches for unknown key ids or after a failure."
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="Timeout of a request to the identity provider.")
    ca_file: str = Field("", description="CA bundle for the identity provider's TLS certificate; empty: certifi's.")

    @model_validator(mode="after")
    def _valid(self) -> OidcSettings:
        try:
            self.config()
        except ValueError as exc:  # stop the gateway at start, naming the variable
            field, _, problem = str(exc).partition(": ")
            raise ValueError(f"HEARTH_OIDC_{field.upper()}: {problem}") from None
        return self

    def config(self) -> OidcConfig | None:
        """The verifier's configuration, or ``None`` when no issuer is configured."""
        if not self.issuer:
            return None
        return OidcConfig(
            issuer=self.issuer,
            audience=_listed(self.audience),
            jwks_url=self.jwks_url,
            algorithms=_listed(self.algorithms),
            leeway_s=self.leeway_s,
            tenant_claim=self.tenant_claim,
            roles_claim=self.roles_claim,
            clearance_claim=self.clearance_claim,
            default_clearance=self.default_clearance,
            max_clearance=self.max_clearance,
            roles=_listed(self.roles),
            jwks_ttl_s=self.jwks_ttl_s,
            refresh_interval_s=self.refresh_interval_s,
            timeout_s=self.timeout_s,
            ca_file=self.ca_file,
        ).check()
