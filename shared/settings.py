"""Hearth settings: one typed model, loaded once, from ``HEARTH_*`` variables (then ``.env``).

Every port and path of the stack is here so that two stacks (a dev stack and the test stack) can
run side by side: give the second one another ``HEARTH_HOME`` and a ``HEARTH_PORT_OFFSET``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

SERVICES: tuple[str, ...] = ("gateway", "ocr", "nlp", "media", "qc_vision", "governance", "telemetry", "workflows")
"""Every Hearth process: the services under ``services/`` and the workflow worker (``workflows/``)."""


def service_module(service: str) -> str:
    """The package a service runs from: ``services.<name>``, or ``workflows`` for the workflow worker."""
    return "workflows" if service == "workflows" else f"services.{service}"


_PORT_FIELDS = (
    "nats_port",
    "nats_monitor_port",
    "temporal_port",
    "temporal_internal_port",
    "temporal_ui_port",
    "temporal_ui_internal_port",
    "temporal_http_port",
    "temporal_metrics_port",
    "openbao_port",
    "openbao_cluster_port",
    "postgres_port",
    "postgres_internal_port",
    "triton_http_port",
    "triton_grpc_port",
    "triton_metrics_port",
    "gateway_port",
    "metrics_port",
)


class SettingsError(RuntimeError):
    """A ``HEARTH_*`` variable holds a value that cannot be used; the message names it."""


class HearthSettings(BaseSettings):
    """Ports, paths and limits of one Hearth stack."""

    model_config = SettingsConfigDict(env_prefix="HEARTH_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    home: Path = Field(REPO_ROOT / "var", description="State directory: data, logs, secrets, runtime files.")
    bind_host: str = Field("127.0.0.1", description="Address every component listens on.")
    port_offset: int = Field(0, ge=0, le=50000, description="Added to every port below (side-by-side stacks).")
    environment: str = Field("dev", description="dev | test | prod; prod refuses the single-box defaults.")
    log_level: str = Field("INFO", description="Log level of Hearth's own processes.")

    nats_port: int = Field(4222, description="NATS client port.")
    nats_monitor_port: int = Field(8222, description="NATS HTTP monitoring port (/healthz, /jsz).")
    temporal_port: int = Field(7233, description="Temporal frontend gRPC port (with HEARTH_TLS, its TLS proxy's).")
    temporal_internal_port: int = Field(
        7234,
        description="With HEARTH_TLS, the Temporal dev server's own loopback port behind the proxy (it has no TLS).",
    )
    temporal_ui_port: int = Field(8233, description="Temporal Web UI port (with HEARTH_TLS, its TLS proxy's).")
    temporal_ui_internal_port: int = Field(
        8234, description="With HEARTH_TLS, the Temporal Web UI's own loopback port behind the proxy."
    )
    temporal_http_port: int = Field(7243, description="Temporal HTTP API port.")
    temporal_metrics_port: int = Field(7244, description="Temporal server Prometheus /metrics port.")
    openbao_port: int = Field(8200, description="OpenBao (Vault API) port.")
    openbao_cluster_port: int = Field(8201, description="OpenBao raft cluster port.")
    postgres_port: int = Field(
        5432, description="PostgreSQL port clients connect to (with HEARTH_TLS, the TLS proxy's)."
    )
    postgres_internal_port: int = Field(
        5433, description="With HEARTH_TLS, PostgreSQL's own loopback port behind the TLS proxy (its build has no TLS)."
    )
    triton_http_port: int = Field(8000, description="Triton KServe v2 HTTP port.")
    triton_grpc_port: int = Field(8001, description="Triton gRPC port.")
    triton_metrics_port: int = Field(8002, description="Triton Prometheus metrics port.")
    gateway_port: int = Field(8080, description="Gateway REST API port.")
    metrics_port: int = Field(
        9460, description="First Prometheus /metrics port of the Hearth processes; each adds its SERVICES index."
    )

    # Where clients find each component; unset means bind_host (the single box). In compose they
    # are the service names (nats, temporal, openbao, postgres, triton, gateway).
    nats_host: str | None = Field(None, description="Host of NATS for clients; default bind_host.")
    temporal_host: str | None = Field(None, description="Host of Temporal for clients; default bind_host.")
    openbao_host: str | None = Field(None, description="Host of OpenBao for clients; default bind_host.")
    postgres_host: str | None = Field(None, description="Host of PostgreSQL for clients; default bind_host.")
    triton_host: str | None = Field(None, description="Host of Triton for the gateway; default bind_host.")
    gateway_host: str | None = Field(None, description="Host of the gateway for clients; default bind_host.")

    nats_user: str = Field(
        "hearth", description="NATS user this process connects as; services connect as their own name."
    )
    nats_auth: bool = Field(
        True, description="NATS requires users (passwords in secrets/nats/); false only for a server without them."
    )
    temporal_namespace: str = Field("default", description="Temporal namespace the services use.")
    postgres_db: str = Field("hearth", description="PostgreSQL database of the platform.")
    postgres_user: str = Field("hearth", description="PostgreSQL role the services use.")
    triton_venv: Path = Field(REPO_ROOT / ".venv-triton", description="Virtual env holding Triton and model deps.")
    triton_model_repository: Path = Field(
        REPO_ROOT / "infra" / "triton" / "model_repository", description="Triton model repository."
    )
    triton_extra_model_repositories: str = Field(
        "", description="More model repositories for Triton, separated by ':' (e.g. the tests' models)."
    )
    workflow_definitions: Path = Field(REPO_ROOT / "workflows", description="Directory of workflow YAML files.")
    workflow_extra_definitions: str = Field(
        "", description="More directories of workflow definitions, separated by ':' (e.g. the tests' workflows)."
    )
    blob_max_bytes: int = Field(512 * 1024 * 1024, gt=0, description="Largest blob the blob store accepts.")
    event_inline_max_bytes: int = Field(
        256 * 1024, gt=0, description="Largest event payload carried inline; bigger data goes to the blob store."
    )
    consumer_max_deliver: int = Field(5, ge=1, description="Deliveries before a message is dead-lettered.")
    metrics_scrape_host: str = Field(
        "", description="Host the telemetry service scrapes each process at; {service} is its name (compose)."
    )
    telemetry_enabled: bool = Field(
        True, description="Metrics endpoints, request measurements and span export; off only to measure their cost."
    )
    trace_inference_ratio: float = Field(
        0.1, ge=0, le=1, description="Share of plain model-call traces kept (all other traces are kept whole)."
    )
    otlp_endpoint: str = Field(
        "", description="OTLP gRPC endpoint spans are also exported to (e.g. http://otel-collector:4317); empty: none."
    )
    tls: bool = Field(
        True, description="TLS on NATS, PostgreSQL, OpenBao, the gateway and /metrics (local CA made at first start)."
    )
    tls_ca_file: Path | None = Field(
        None,
        description="Your CA certificate (PEM): clients trust it; with HEARTH_TLS_CA_KEY_FILE, Hearth issues from it.",
    )
    tls_ca_key_file: Path | None = Field(
        None, description="The key of HEARTH_TLS_CA_FILE, to issue the server certificate."
    )
    tls_cert_file: Path | None = Field(
        None,
        description="Your server certificate chain (PEM), used as is; with HEARTH_TLS_KEY_FILE and HEARTH_TLS_CA_FILE.",
    )
    tls_key_file: Path | None = Field(None, description="The key of HEARTH_TLS_CERT_FILE.")
    startup_timeout_s: float = Field(120.0, gt=0, description="How long `hearth up` waits for each tier.")

    @model_validator(mode="after")
    def _apply_port_offset(self) -> HearthSettings:
        if self.port_offset:
            for name in _PORT_FIELDS:
                object.__setattr__(self, name, getattr(self, name) + self.port_offset)
        for name in _PORT_FIELDS:
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise ValueError(f"HEARTH_{name.upper()} (after HEARTH_PORT_OFFSET) is {port}, outside 1-65535")
        return self

    # ---- derived locations -------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def tls_dir(self) -> Path:
        """Public half of the local PKI (``ca.pem``, ``server.pem``); the keys are in ``secrets/``."""
        return self.home / "tls"

    @property
    def tls_ca_path(self) -> Path:
        return self.tls_ca_file or self.tls_dir / "ca.pem"

    @property
    def tls_ca_key_path(self) -> Path:
        return self.tls_ca_key_file or self.secret_path("tls-ca.key")

    @property
    def tls_cert_path(self) -> Path:
        return self.tls_cert_file or self.tls_dir / "server.pem"

    @property
    def tls_key_path(self) -> Path:
        return self.tls_key_file or self.secret_path("tls-server.key")

    def data_dir(self, component: str) -> Path:
        return self.home / "data" / component

    def secret_path(self, name: str) -> Path:
        return self.secrets_dir / name

    def read_secret(self, name: str) -> str:
        """Return the secret file's content; raises ``SettingsError`` naming the file if absent."""
        path = self.secret_path(name)
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            raise SettingsError(f"secret {path} is missing: run `hearth up` to initialise the stack") from None

    # ---- derived addresses -------------------------------------------------------------------
    def _client_host(self, host: str | None) -> str:
        if host:
            return host
        # A wildcard bind address is not something a client can connect to.
        wildcard = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104 - mapping, not binding
        return wildcard.get(self.bind_host, self.bind_host)

    @property
    def plaintext_bind_host(self) -> str:
        """Where the components that cannot serve TLS listen (the Temporal dev server, its UI, Triton's
        HTTP and metrics ports, PostgreSQL): ``bind_host`` when that is a loopback address, else ``127.0.0.1``."""
        if not self.tls or self.bind_host in ("localhost", "::1") or self.bind_host.startswith("127."):
            return self.bind_host
        return "127.0.0.1"

    def _plaintext_client_host(self, host: str | None) -> str:
        return host or self._client_host(self.plaintext_bind_host)

    @property
    def triton_user_model_repository(self) -> Path:
        """Models the user adds (``hearth models add-generator``), under the state directory."""
        return self.data_dir("triton") / "models"

    @property
    def triton_repositories(self) -> list[Path]:
        """Every model repository Triton serves: the platform's, the extra ones, the user's last."""
        extra = [Path(p) for p in self.triton_extra_model_repositories.split(":") if p.strip()]
        return [self.triton_model_repository, *extra, self.triton_user_model_repository]

    @property
    def workflow_directories(self) -> list[Path]:
        """Every directory of workflow definitions, the platform's first."""
        extra = [Path(p) for p in self.workflow_extra_definitions.split(":") if p.strip()]
        return [self.workflow_definitions, *extra]

    @property
    def _http_scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def nats_url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://{self._client_host(self.nats_host)}:{self.nats_port}"

    @property
    def nats_monitor_url(self) -> str:
        return f"{self._http_scheme}://{self._client_host(self.nats_host)}:{self.nats_monitor_port}"

    @property
    def temporal_address(self) -> str:
        """The frontend for clients: with TLS its proxy (any bind host), else the loopback-only dev server."""
        host = self._client_host(self.temporal_host) if self.tls else self._plaintext_client_host(self.temporal_host)
        return f"{host}:{self.temporal_port}"

    @property
    def temporal_server_port(self) -> int:
        """The port the Temporal dev server itself listens on (loopback)."""
        return self.temporal_internal_port if self.tls else self.temporal_port

    @property
    def temporal_ui_url(self) -> str:
        if self.tls:  # through the proxy: the same scheme and host as the gateway's codec endpoint
            return f"https://{self._client_host(self.temporal_host)}:{self.temporal_ui_port}"
        return f"http://{self._plaintext_client_host(self.temporal_host)}:{self.temporal_ui_port}"

    @property
    def temporal_ui_server_port(self) -> int:
        """The port the Temporal Web UI itself listens on (loopback)."""
        return self.temporal_ui_internal_port if self.tls else self.temporal_ui_port

    @property
    def openbao_url(self) -> str:
        return f"{self._http_scheme}://{self._client_host(self.openbao_host)}:{self.openbao_port}"

    @property
    def triton_http_url(self) -> str:
        return f"http://{self._plaintext_client_host(self.triton_host)}:{self.triton_http_port}"

    @property
    def triton_grpc_address(self) -> str:
        return f"{self._plaintext_client_host(self.triton_host)}:{self.triton_grpc_port}"

    @property
    def gateway_url(self) -> str:
        return f"{self._http_scheme}://{self._client_host(self.gateway_host)}:{self.gateway_port}"

    def service_metrics_port(self, service: str) -> int:
        """The /metrics port of a Hearth process: ``metrics_port`` plus its index in ``SERVICES``."""
        return self.metrics_port + SERVICES.index(service)

    def service_metrics_url(self, service: str) -> str:
        """Where the process serves /metrics: on its own box, or by name when each runs apart (compose)."""
        host = self.metrics_scrape_host.format(service=service) if self.metrics_scrape_host else self.bind_host
        return f"{self._http_scheme}://{host}:{self.service_metrics_port(service)}/metrics"

    @property
    def postgres_server_port(self) -> int:
        """The port PostgreSQL itself listens on (its unix socket is named after it)."""
        return self.postgres_internal_port if self.tls else self.postgres_port

    @property
    def postgres_server_host(self) -> str:
        """Where PostgreSQL itself listens: loopback behind the TLS proxy, else ``bind_host``."""
        return "127.0.0.1" if self.tls else self.bind_host

    @property
    def postgres_client_host(self) -> str:
        return self._client_host(self.postgres_host)

    def postgres_dsn(self, *, driver: str = "postgresql+asyncpg", password: str | None = None) -> str:
        """DSN of the platform database for the service role (password from the secrets dir)."""
        pw = password if password is not None else self.read_secret("postgres-password")
        return (
            f"{driver}://{self.postgres_user}:{pw}@{self.postgres_client_host}:{self.postgres_port}/{self.postgres_db}"
        )

    def child_environment(self) -> dict[str, str]:
        """The ``HEARTH_*`` variables that make a child process see these same settings."""
        env: dict[str, Any] = {"HEARTH_HOME": str(self.home), "HEARTH_BIND_HOST": self.bind_host}
        for name in _PORT_FIELDS:
            env[f"HEARTH_{name.upper()}"] = str(getattr(self, name))
        for name in ("nats_host", "temporal_host", "openbao_host", "postgres_host", "triton_host", "gateway_host"):
            value = getattr(self, name)
            if value:
                env[f"HEARTH_{name.upper()}"] = value
        env["HEARTH_PORT_OFFSET"] = "0"  # ports above are final already
        env["HEARTH_ENVIRONMENT"] = self.environment
        env["HEARTH_NATS_AUTH"] = "true" if self.nats_auth else "false"
        env["HEARTH_TLS"] = "true" if self.tls else "false"
        for name in ("tls_ca_file", "tls_ca_key_file", "tls_cert_file", "tls_key_file"):
            value = getattr(self, name)
            if value:
                env[f"HEARTH_{name.upper()}"] = str(value)
        env["HEARTH_LOG_LEVEL"] = self.log_level
        env["HEARTH_TRITON_VENV"] = str(self.triton_venv)
        env["HEARTH_TRITON_MODEL_REPOSITORY"] = str(self.triton_model_repository)
        env["HEARTH_TRITON_EXTRA_MODEL_REPOSITORIES"] = self.triton_extra_model_repositories
        return env


def load_settings(**overrides: Any) -> HearthSettings:
    """Build settings from the environment; a bad value raises ``SettingsError`` naming the variable."""
    try:
        return HearthSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"HEARTH_{field.upper()}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None


@functools.lru_cache(maxsize=1)
def get_settings() -> HearthSettings:
    """The process-wide settings, loaded once."""
    return load_settings()
