#!/bin/sh
# Entry point of service `temporal` (image temporalio/server): read the database password from
# the compose secret instead of the environment, then start the server the image's way.
set -eu

POSTGRES_PWD="$(cat /run/secrets/temporal-db-password)"
export POSTGRES_PWD

if [ -x /etc/temporal/entrypoint.sh ]; then
    exec /etc/temporal/entrypoint.sh
fi
# Fallback for an image without the script: what it does. With BIND_ON_IP=0.0.0.0 the server
# must be told which address the other Temporal roles reach it on.
if [ "${BIND_ON_IP:-}" = 0.0.0.0 ] && [ -z "${TEMPORAL_BROADCAST_ADDRESS:-}" ]; then
    TEMPORAL_BROADCAST_ADDRESS="$(getent hosts "$(hostname)" | awk '{print $1; exit}')"
    export TEMPORAL_BROADCAST_ADDRESS
fi
exec temporal-server start
