#!/bin/sh
# Installs what nftfarm and its tests need on Debian 12 (run as root), then the npm packages.
# Node.js 20 and npm come with the machine; Debian's own nodejs (18) is too old.
set -eu
cd "$(dirname "$0")/.."

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "nftfarm needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  # nftables, iproute2: the data plane; conntrack: connection counts and flushes of the nat
  # and dnat modes; iputils-ping: check_ping. The rest: the tests' traffic and captures.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    nftables iproute2 conntrack iputils-ping tcpdump curl arping procps util-linux ca-certificates openssl \
    python3 python3-prometheus-client iperf3 make g++ >/dev/null
else
  echo "not root (or no apt-get): skipping system packages (nftables, iproute2, conntrack, iputils-ping, tcpdump, curl)" >&2
fi

# Compiles the TypeScript sources to dist/ too (the prepare script).
npm ci --no-audit --no-fund
