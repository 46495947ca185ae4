#!/usr/bin/env bash
# Runs every test. Kernel tests make network namespaces, so the suite runs as root: through sudo
# when started by another user, directly when root already (a bare machine may have no sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
  exec npm test
fi
exec sudo --preserve-env=CI,PATH npm test
