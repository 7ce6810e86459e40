#!/usr/bin/env bash
# Prints connection statistics: of every farm, or of one farm and its backends.
#
# Usage: ZAPI_KEY=<key> ./read-stats.sh [FARM]
#   NFTFARM_URL   the API (default http://127.0.0.1:4444)
set -eu

NFTFARM_URL="${NFTFARM_URL:-http://127.0.0.1:4444}"
: "${ZAPI_KEY:?set ZAPI_KEY to the API key}"
ZAPI="$NFTFARM_URL/zapi/v4.0/zapi.cgi"

if [ $# -ge 1 ]; then
  curl -sS --fail-with-body -H "ZAPI_KEY: $ZAPI_KEY" "$ZAPI/stats/farms/$1"
else
  curl -sS --fail-with-body -H "ZAPI_KEY: $ZAPI_KEY" "$ZAPI/stats/farms"
fi
echo
