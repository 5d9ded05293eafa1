#!/usr/bin/env bash
# Install Debian's QGIS 3.22 (qgis_process.bin + python3-qgis) for the real-QGIS tests, with
# python3-venv: the plugin's sar2opt:setup makes the backend's environment with QGIS's own Python
# (/usr/bin/python3), and Debian ships venv/ensurepip separately. (scripts/qgis_screenshots.py,
# for the docs only, also needs xvfb: apt-get install -y xvfb.)
# Idempotent; needs root (CI and the dev machines run as root).
set -euo pipefail
PACKAGES="qgis python3-qgis qgis-providers python3-venv"
if command -v qgis_process.bin >/dev/null 2>&1 && /usr/bin/python3 -c "import qgis.core, venv, ensurepip" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "install_qgis.sh: QGIS or python3-venv is missing and this is not root; run: sudo apt-get install -y --no-install-recommends $PACKAGES" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
