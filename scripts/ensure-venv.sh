#!/usr/bin/env bash
# Create the project's virtualenv if it is missing: scripts/ensure-venv.sh [PYTHON] [VENV].
# On Debian and Ubuntu, python3 comes without the venv module until python3-venv is installed:
# as root this installs it; otherwise it says how.
set -euo pipefail

python="${1:-python3}"
venv="${2:-.venv}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "$python not found: install Python 3.10 or newer (Debian/Ubuntu: apt-get install python3)" >&2
    exit 1
fi

rm -rf "$venv"
if "$python" -m venv "$venv"; then
    exit 0
fi
rm -rf "$venv"

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "the venv module is missing: installing Debian's python3-venv package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
    "$python" -m venv "$venv"
    exit 0
fi

echo "could not create $venv with $python -m venv." >&2
echo "On Debian/Ubuntu install the venv module first: sudo apt-get install python3-venv" >&2
exit 1
