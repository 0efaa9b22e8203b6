#!/usr/bin/env bash
# Make sure a redis-server binary exists: the tests start their own server on a free port.
# $REDIS_SERVER may name a binary that is not on PATH.
set -euo pipefail

if [ -n "${REDIS_SERVER:-}" ] && [ -x "$REDIS_SERVER" ]; then
    exit 0
fi
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found: installing Debian's redis-server package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq redis-server >/dev/null
    # The package may start a system service on port 6379; the tests run their own server.
    if command -v service >/dev/null 2>&1; then
        service redis-server stop >/dev/null 2>&1 || true
    fi
    exit 0
fi

echo "redis-server not found. Install it (Debian/Ubuntu: sudo apt-get install redis-server;" >&2
echo "macOS: brew install redis) or set REDIS_SERVER=/path/to/redis-server: the Redis tests" >&2
echo "start their own server on a free port, and are skipped without one." >&2
if [ "${CI:-}" = "true" ]; then
    echo "CI=true: a missing redis-server is a failure." >&2
    exit 1
fi
exit 0
