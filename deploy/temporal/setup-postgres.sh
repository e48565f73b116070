#!/bin/sh
# One-shot (temporalio/admin-tools): create Temporal's two PostgreSQL databases and bring their schemas to
# the version this admin-tools image ships. Idempotent: `create` fails harmlessly when the database exists,
# `setup-schema -v 0.0` only initialises an empty database, `update-schema` applies what is missing.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${POSTGRES_PWD:?}"
DB_PORT=${DB_PORT:-5432}
SCHEMA_ROOT=${SCHEMA_ROOT:-/etc/temporal/schema/postgresql/v12}
export SQL_PASSWORD="$POSTGRES_PWD"

echo "waiting for PostgreSQL at $POSTGRES_SEEDS:$DB_PORT"
i=0
until nc -z -w 5 "$POSTGRES_SEEDS" "$DB_PORT"; do
  i=$((i + 1)); [ "$i" -ge 60 ] && { echo "PostgreSQL never answered"; exit 1; }
  sleep 2
done

sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"; }

setup() {  # DATABASE SCHEMA_DIR
  sql --db "$1" create || echo "database $1 exists"
  sql --db "$1" setup-schema -v 0.0 || echo "schema of $1 already initialised"
  sql --db "$1" update-schema -d "$2"
}

setup "${DBNAME:-temporal}" "$SCHEMA_ROOT/temporal/versioned"
setup "${VISIBILITY_DBNAME:-temporal_visibility}" "$SCHEMA_ROOT/visibility/versioned"
echo "Temporal schema ready"
