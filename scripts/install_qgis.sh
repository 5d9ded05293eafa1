#!/usr/bin/env bash
# Install Debian's QGIS 3.22 (qgis_process.bin + python3-qgis) for the real-QGIS tests.
# Idempotent; needs root (CI and the dev machines run as root).
set -euo pipefail
if command -v qgis_process.bin >/dev/null 2>&1 && /usr/bin/python3 -c "import qgis.core" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "install_qgis.sh: QGIS is missing and this is not root; run: sudo apt-get install -y --no-install-recommends qgis python3-qgis qgis-providers" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends qgis python3-qgis qgis-providers >/dev/null
