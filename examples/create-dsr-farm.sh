#!/usr/bin/env bash
# Creates an L4xNAT farm with Direct Server Return (nattype dsr), adds two backends and links
# the check_tcp health check, through the ZAPI v4.0 API of nftfarm (or ZEVENET).
#
# Usage: ZAPI_KEY=<key> ./create-dsr-farm.sh [FARM]
#   NFTFARM_URL   the API (default http://127.0.0.1:4444)
#   ZAPI_KEY      the API key (required)
#   FARM          farm name (default dsrfarm; the first argument wins)
#   VIP VPORT     virtual IP and port (default 10.250.0.100 and 80)
#   BACKENDS      backend IPs, space separated (default "10.250.0.21 10.250.0.22")
#
# In DSR mode the backends answer clients directly: each one needs the VIP on its loopback
# and ARP for it turned off (GET /farms/FARM/backend-setup prints a script for that).
set -eu

NFTFARM_URL="${NFTFARM_URL:-http://127.0.0.1:4444}"
: "${ZAPI_KEY:?set ZAPI_KEY to the API key}"
FARM="${1:-${FARM:-dsrfarm}}"
VIP="${VIP:-10.250.0.100}"
VPORT="${VPORT:-80}"
BACKENDS="${BACKENDS:-10.250.0.21 10.250.0.22}"
ZAPI="$NFTFARM_URL/zapi/v4.0/zapi.cgi"

# zapi METHOD PATH [JSON]: prints the JSON answer; fails (showing the answer) on an HTTP error.
zapi() {
  if [ $# -ge 3 ]; then
    curl -sS --fail-with-body -X "$1" -H "ZAPI_KEY: $ZAPI_KEY" -H 'Content-Type: application/json' -d "$3" "$ZAPI$2"
  else
    curl -sS --fail-with-body -X "$1" -H "ZAPI_KEY: $ZAPI_KEY" "$ZAPI$2"
  fi
  echo
}

echo "# create farm $FARM on $VIP:$VPORT"
zapi POST /farms "{\"farmname\":\"$FARM\",\"profile\":\"l4xnat\",\"vip\":\"$VIP\",\"vport\":\"$VPORT\"}"

echo "# switch it to Direct Server Return"
zapi PUT "/farms/$FARM" '{"nattype":"dsr"}'

for ip in $BACKENDS; do
  # No port: in DSR mode a backend receives the client's destination port.
  echo "# add backend $ip"
  zapi POST "/farms/$FARM/backends" "{\"ip\":\"$ip\",\"weight\":1}"
done

echo "# link the check_tcp health check"
zapi POST "/farms/$FARM/fg" '{"name":"check_tcp"}'

echo "# the farm"
zapi GET "/farms/$FARM"
