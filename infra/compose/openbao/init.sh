#!/bin/sh
# One-shot job `openbao-init` of docker-compose.yml: initialise OpenBao on the stack's first start.
#
# The server auto-unseals with the static seal key, so initialising creates recovery keys instead
# of unseal keys: one share, threshold one, as the native launcher does. The result (recovery key
# and root token) goes to $BAO_INIT_FILE on the `openbao-init` volume, which only this job mounts;
# the directory is 0700 and owned by the openbao user (see volumes-init.sh). Later starts find the
# server initialised and do nothing.
#
# Exit status: 0 when OpenBao is initialised and unsealed, non-zero otherwise (compose then keeps
# the services that need OpenBao from starting).
set -eu

: "${BAO_ADDR:=http://openbao:8200}"
: "${BAO_INIT_FILE:=/openbao/init/init.json}"
: "${BAO_INIT_TIMEOUT_S:=120}"
export BAO_ADDR

# `bao status` exits 0 when unsealed, 2 when sealed, 1 when the server cannot be reached.
status() {
    rc=0
    bao status >/dev/null 2>&1 || rc=$?
    echo "$rc"
}

wait_for() { # wait_for <wanted rc> <what>
    waited=0
    while [ "$(status)" != "$1" ]; do
        if [ "$waited" -ge "$BAO_INIT_TIMEOUT_S" ]; then
            echo "openbao-init: OpenBao at $BAO_ADDR not $2 after ${BAO_INIT_TIMEOUT_S}s" >&2
            exit 1
        fi
        sleep 2
        waited=$((waited + 2))
    done
}

# Any answer (sealed or not) means the API is up.
waited=0
while [ "$(status)" = 1 ]; do
    if [ "$waited" -ge "$BAO_INIT_TIMEOUT_S" ]; then
        echo "openbao-init: OpenBao at $BAO_ADDR not reachable after ${BAO_INIT_TIMEOUT_S}s" >&2
        exit 1
    fi
    sleep 2
    waited=$((waited + 2))
done

if bao status -format=json 2>/dev/null | grep -Eq '"initialized": *true'; then
    echo "openbao-init: already initialised"
    if [ ! -s "$BAO_INIT_FILE" ]; then
        echo "openbao-init: warning: $BAO_INIT_FILE is missing or empty (volume recreated?)" >&2
    fi
else
    umask 077
    tmp="$BAO_INIT_FILE.partial"
    bao operator init -recovery-shares=1 -recovery-threshold=1 -format=json >"$tmp"
    mv "$tmp" "$BAO_INIT_FILE"
    echo "openbao-init: initialised; recovery key and root token are in $BAO_INIT_FILE"
fi

# The static seal unseals right after initialisation and on every restart.
wait_for 0 unsealed
echo "openbao-init: OpenBao is unsealed"
