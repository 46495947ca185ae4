#!/usr/bin/env bash
# Installs everything Palisade needs on a fresh Debian machine (Debian 12 "bookworm" here):
# the firewall tools the agent drives and the tests use, then the npm packages and the build.
set -euo pipefail
cd "$(dirname "$0")/.."

# postgresql: the tests start a private PostgreSQL (initdb/pg_ctl) to run the store suite on it.
# tcpdump: the agent reads its flow logs (NFLOG) with it. chromium: the console tests drive it.
# binutils: `npm run package` strips the node binary it builds the one-file agent from. curl and
# systemd: the install test pipes the server's install script from curl and checks the unit with
# systemd-analyze (systemd need not run).
DEBIAN_PACKAGES=(nftables iptables ipset conntrack tcpdump iproute2 procps openssl util-linux postgresql chromium binutils curl systemd)
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: Palisade needs Node.js 20.19 or newer (found $(node --version))" >&2
  exit 1
fi
npm ci --no-audit --no-fund
npm run build
