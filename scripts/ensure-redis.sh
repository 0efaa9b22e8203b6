#!/usr/bin/env bash
# Make sure a redis-server binary exists: the tests start their own server on a free port.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found: installing Debian's redis-server package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq redis-server >/dev/null
    # The package starts a system service; the tests run their own server instead.
    if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
    exit 0
fi

echo "redis-server not found. Install it (Debian/Ubuntu: sudo apt-get install redis-server;" >&2
echo "macOS: brew install redis) so the Redis tests can start their own server." >&2
if [ "${CI:-}" = "true" ]; then
    echo "CI=true: a missing redis-server is a failure." >&2
    exit 1
fi
exit 0
