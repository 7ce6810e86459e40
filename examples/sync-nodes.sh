#!/usr/bin/env bash
# Keeps N nftfarm nodes identical: exports the configuration of the first node (GET
# /system/config) and applies it to each of the others (PUT /system/config), then compares
# their config_digest. Node-specific settings (the BGP router id) stay each node's own.
# Run it after every change made on the first node, or from cron/CI as a drift check.
#
# Usage: ZAPI_KEY=<key> ./sync-nodes.sh [--dry-run] SOURCE_URL TARGET_URL...
#   e.g.  ./sync-nodes.sh http://10.0.0.2:4444 http://10.0.0.3:4444 http://10.0.0.4:4444
#   ZAPI_KEY   the API key (the same on every node; see NFTFARM_API_KEY)
#   --dry-run  show what each target would create, change and delete; change nothing
# Exits 1 when a node refused the document or its digest differs afterwards.
set -eu

: "${ZAPI_KEY:?set ZAPI_KEY to the API key}"
query=''
if [ "${1:-}" = "--dry-run" ]; then
  query='?dry_run=true'
  shift
fi
if [ $# -lt 2 ]; then
  echo "usage: $0 [--dry-run] SOURCE_URL TARGET_URL..." >&2
  exit 2
fi
ZAPI=/zapi/v4.0/zapi.cgi
source_url="$1"
shift

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -sS --fail-with-body -H "ZAPI_KEY: $ZAPI_KEY" "$source_url$ZAPI/system/config" >"$tmp"
digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$tmp")
echo "# $source_url: $digest"

status=0
for target in "$@"; do
  echo "# $target"
  # The whole answer of the GET is accepted as it is (envelope and all).
  if ! curl -sS --fail-with-body -X PUT -H "ZAPI_KEY: $ZAPI_KEY" -H 'Content-Type: application/json' \
    --data-binary "@$tmp" "$target$ZAPI/system/config$query"; then
    echo
    echo "# $target refused the configuration" >&2
    status=1
    continue
  fi
  echo
  if [ -z "$query" ]; then
    now=$(curl -sS --fail-with-body -H "ZAPI_KEY: $ZAPI_KEY" "$target$ZAPI/system/status" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["params"]["config_digest"])')
    if [ "$now" != "$digest" ]; then
      echo "# $target: digest $now differs from $digest" >&2
      status=1
    else
      echo "# $target: $now (in line)"
    fi
  fi
done
exit $status
