#!/bin/sh
# One-shot (temporalio/admin-tools): create the retailflow namespace and register its custom search
# attributes. Idempotent: what exists is left alone. Inputs (environment):
#   TEMPORAL_ADDRESS   host:port of the frontend            (default temporal:7233)
#   NAMESPACE          the namespace to create             (default retailflow)
#   RETENTION          closed-workflow retention, e.g. 30d (default 30d)
#   SEARCH_ATTRIBUTES  space-separated Name=Type pairs     (required; = retailflow.settings.SEARCH_ATTRIBUTES)
set -eu
TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-temporal:7233}
NAMESPACE=${NAMESPACE:-retailflow}
RETENTION=${RETENTION:-30d}
: "${SEARCH_ATTRIBUTES:?space-separated Name=Type pairs}"
T="temporal --address $TEMPORAL_ADDRESS"

retry() {  # retry CMD... for up to 2 minutes (the server starts, a new namespace propagates)
  n=0
  until "$@"; do
    n=$((n + 1)); [ "$n" -ge 60 ] && { echo "gave up: $*"; return 1; }
    sleep 2
  done
}

echo "waiting for Temporal at $TEMPORAL_ADDRESS"
retry $T operator cluster health >/dev/null

if $T operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  $T operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
fi

registered() { $T operator search-attribute list --namespace "$NAMESPACE" -o json 2>/dev/null | grep -q "\"$1\""; }

for pair in $SEARCH_ATTRIBUTES; do
  name=${pair%%=*}; type=${pair#*=}
  if registered "$name"; then
    echo "search attribute $name exists"
  else
    retry $T operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type "$type"
  fi
done
echo "namespace $NAMESPACE ready"
