#!/bin/sh
# One-shot job `temporal-schema` of docker-compose.yml (image temporalio/admin-tools): create or
# upgrade Temporal's schemas in temporal-db before the server starts. Idempotent: on a database
# that has a schema, update-schema applies what is missing (or nothing); on an empty one it fails
# and the schema is set up from version 0.0 first. The databases themselves come from
# temporal/initdb/ (so Temporal's role needs no CREATEDB).
set -eu

SQL_PASSWORD="$(cat /run/secrets/temporal-db-password)"
export SQL_PASSWORD
schemas=/etc/temporal/schema/postgresql/v12

sqltool() {
    temporal-sql-tool --plugin postgres12 --endpoint "${SQL_HOST:-temporal-db}" \
        --port "${SQL_PORT:-5432}" --user "${SQL_USER:-temporal}" "$@"
}

migrate() { # migrate <database> <schema dir>
    if sqltool --database "$1" update-schema -d "$schemas/$2/versioned"; then
        return
    fi
    echo "temporal-schema: no schema in $1 yet, setting it up"
    sqltool --database "$1" setup-schema -v 0.0
    sqltool --database "$1" update-schema -d "$schemas/$2/versioned"
}

migrate temporal temporal
migrate temporal_visibility visibility
echo "temporal-schema: schemas are current"
