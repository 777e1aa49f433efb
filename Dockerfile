# syntax=docker/dockerfile:1
# The one Hearth image: every service under services/ runs from it, one container each
# (docker-compose.yml sets the command `python -m services.<name>`). Triton, NATS, Temporal,
# OpenBao and PostgreSQL come from their own official images, not from here.
#
#   docker build -t hearth:0.1.0 .        (or `docker compose build`)

ARG PYTHON_IMAGE=python:3.11.17-slim-trixie

# ---- build: the project and its runtime dependencies in a virtual env ---------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/hearth

WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared/ shared/
COPY services/ services/
COPY workflows/ workflows/
# Runtime dependencies only: the [dev] extra (pytest, ruff, mypy...) stays out.
RUN /opt/hearth/bin/pip install .

# ---- runtime --------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG HEARTH_UID=10001
ARG HEARTH_VERSION=0.1.0

LABEL org.opencontainers.image.title="hearth" \
      org.opencontainers.image.description="Hearth services (gateway, ocr, nlp, media, qc_vision, governance, telemetry): an on-premise AI platform on NATS, Temporal, OpenBao, PostgreSQL and Triton" \
      org.opencontainers.image.version="${HEARTH_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# The services never write into the image: state goes to $HEARTH_HOME/data (a volume), secrets are
# mounted into $HEARTH_HOME/secrets, run/ and logs/ are tmpfs in compose (read-only root fs).
RUN groupadd --system --gid "${HEARTH_UID}" hearth \
 && useradd --system --uid "${HEARTH_UID}" --gid hearth --home-dir /var/lib/hearth \
            --no-create-home --shell /usr/sbin/nologin hearth \
 && mkdir -p /var/lib/hearth/data /var/lib/hearth/secrets /var/lib/hearth/run /var/lib/hearth/logs \
 && chown -R hearth:hearth /var/lib/hearth \
 && chmod 0750 /var/lib/hearth /var/lib/hearth/data /var/lib/hearth/secrets

COPY --from=build /opt/hearth /opt/hearth

# The source tree as well as the installed package: the code finds infra/ (Casbin model, Triton
# model names...) and workflows/*.yaml relative to the repository root, so /app first on the path.
WORKDIR /app
COPY shared/ shared/
COPY services/ services/
COPY workflows/ workflows/
COPY infra/ infra/
# Compiled now, as root: at run time the root fs is read-only and owned by root.
RUN /opt/hearth/bin/python -m compileall -q /app

ENV PATH=/opt/hearth/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEARTH_HOME=/var/lib/hearth \
    HEARTH_BIND_HOST=0.0.0.0 \
    HEARTH_SERVICE=gateway

USER ${HEARTH_UID}:${HEARTH_UID}

# Each compose service overrides this (and sets HEARTH_SERVICE); alone, the image is the gateway.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["sh", "-c", "exec python -m shared.healthcheck \"$HEARTH_SERVICE\""]

EXPOSE 8080
CMD ["python", "-m", "services.gateway"]
