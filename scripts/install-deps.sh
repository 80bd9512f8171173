#!/usr/bin/env bash
# Installs the Debian packages Tollgate needs, only those missing (apt-get update once first).
set -euo pipefail
packages=(redis-server redis-tools libhiredis-dev libcurl4-openssl-dev pkg-config wrk nginx-light)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=600
  $SUDO apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi
command -v swift >/dev/null || { echo "swift is not on PATH (Swift 6 toolchain required)"; exit 1; }
