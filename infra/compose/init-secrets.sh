#!/bin/sh
# Create the secrets of the compose stack, once, before the first `docker compose up`.
#
#   infra/compose/init-secrets.sh [DIR]
#
# DIR defaults to $HEARTH_COMPOSE_SECRETS, else var/compose/secrets under the repository root
# (var/ is gitignored); docker-compose.yml reads the same variable with the same default. Files
# that exist are kept, so running it again is harmless and never rotates a key by accident.
#
# Files: postgres-password, temporal-db-password, triton-admin-key, metrics-token (the bearer
# token of every /metrics, which Prometheus presents), grafana-admin-password (user `admin`) as
# text, and openbao-seal-key (32 random bytes: the static auto-unseal key; losing it loses
# OpenBao's data).
#
# Compose mounts these files into containers whose users are not yours (postgres, openbao,
# hearth...), and without swarm it cannot change their owner. So the files are world-readable
# and the directory is 0700: only the owner (and Docker, as root) can reach them on the host.
set -eu

repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${1:-${HEARTH_COMPOSE_SECRETS:-$repo/var/compose/secrets}}"

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

random_text() { # 32 random bytes as URL-safe text (no quoting trouble in DSNs or flags)
    head -c 32 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_'
}

new_secret() { # new_secret <name> <text|key>
    path="$dir/$1"
    if [ -s "$path" ]; then
        echo "kept    $path"
        return
    fi
    if [ "$2" = key ]; then
        head -c 32 /dev/urandom >"$path.tmp"
    else
        random_text >"$path.tmp"
    fi
    chmod 0444 "$path.tmp"
    mv "$path.tmp" "$path"
    echo "created $path"
}

new_secret postgres-password text
new_secret temporal-db-password text
new_secret triton-admin-key text
new_secret metrics-token text
new_secret grafana-admin-password text
new_secret openbao-seal-key key
