#!/usr/bin/env bash
# Deletes a farm with its backends; nftfarm removes its rules and stops announcing its VIP.
#
# Usage: ZAPI_KEY=<key> ./delete-farm.sh FARM
#   NFTFARM_URL   the API (default http://127.0.0.1:4444)
set -eu

NFTFARM_URL="${NFTFARM_URL:-http://127.0.0.1:4444}"
: "${ZAPI_KEY:?set ZAPI_KEY to the API key}"
if [ $# -ne 1 ]; then
  echo "usage: $0 FARM" >&2
  exit 2
fi
ZAPI="$NFTFARM_URL/zapi/v4.0/zapi.cgi"

curl -sS --fail-with-body -X DELETE -H "ZAPI_KEY: $ZAPI_KEY" "$ZAPI/farms/$1"
echo
