#!/usr/bin/env bash
# Make sure the wrk HTTP load generator exists: the load test of the rate limit middleware runs it
# against uvicorn. $WRK may name a binary that is not on PATH.
set -euo pipefail

if [ -n "${WRK:-}" ] && [ -x "$WRK" ]; then
    exit 0
fi
if command -v wrk >/dev/null 2>&1 || [ -x /usr/bin/wrk ]; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "wrk not found: installing Debian's wrk package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq wrk >/dev/null
    exit 0
fi

echo "wrk not found. Install it (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk)" >&2
echo "or set WRK=/path/to/wrk: the load test is skipped without it." >&2
if [ "${CI:-}" = "true" ]; then
    echo "CI=true: a missing wrk is a failure." >&2
    exit 1
fi
exit 0
