#!/usr/bin/env bash
# Quick start: install napari-nanosims with napari into .venv and run it on the
# built-in demo acquisition in napari. Usage: bash scripts/quickstart.sh [FILE.im ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends \
    libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 \
    libfontconfig1 libdbus-1-3 >/dev/null
  python3 -m venv --help >/dev/null 2>&1 || $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[napari]" "PyQt6"
nanosims view "$@"
