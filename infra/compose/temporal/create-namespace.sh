#!/bin/sh
# One-shot job `temporal-namespace` of docker-compose.yml (image temporalio/admin-tools): wait
# until the server answers, then create Hearth's namespace unless it exists. A bare
# temporalio/server has only `temporal-system`.
set -eu

addr="${TEMPORAL_ADDRESS:-temporal:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"
retention="${TEMPORAL_NAMESPACE_RETENTION:-72h}"
timeout_s="${TEMPORAL_WAIT_TIMEOUT_S:-180}"

waited=0
until temporal operator cluster health --address "$addr" >/dev/null 2>&1; do
    if [ "$waited" -ge "$timeout_s" ]; then
        echo "temporal-namespace: Temporal at $addr not serving after ${timeout_s}s" >&2
        exit 1
    fi
    sleep 2
    waited=$((waited + 2))
done

if temporal operator namespace describe -n "$namespace" --address "$addr" >/dev/null 2>&1; then
    echo "temporal-namespace: namespace $namespace exists"
else
    temporal operator namespace create -n "$namespace" --retention "$retention" --address "$addr"
    echo "temporal-namespace: namespace $namespace created (retention $retention)"
fi
