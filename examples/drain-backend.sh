#!/usr/bin/env bash
# Puts a backend of a farm in drain maintenance: it gets no new connections, established
# ones go on. Undo with: {"action":"up"} on the same call.
#
# Usage: ZAPI_KEY=<key> ./drain-backend.sh FARM BACKEND_ID
#   NFTFARM_URL   the API (default http://127.0.0.1:4444)
set -eu

NFTFARM_URL="${NFTFARM_URL:-http://127.0.0.1:4444}"
: "${ZAPI_KEY:?set ZAPI_KEY to the API key}"
if [ $# -ne 2 ]; then
  echo "usage: $0 FARM BACKEND_ID" >&2
  exit 2
fi
FARM="$1"
ID="$2"
ZAPI="$NFTFARM_URL/zapi/v4.0/zapi.cgi"

echo "# drain backend $ID of farm $FARM"
curl -sS --fail-with-body -X PUT -H "ZAPI_KEY: $ZAPI_KEY" -H 'Content-Type: application/json' \
  -d '{"action":"maintenance","mode":"drain"}' "$ZAPI/farms/$FARM/backends/$ID/maintenance"
echo

echo "# the farm"
curl -sS --fail-with-body -H "ZAPI_KEY: $ZAPI_KEY" "$ZAPI/farms/$FARM"
echo
