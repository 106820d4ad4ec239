#!/usr/bin/env bash
# Make sure a redis-server binary is available for the Redis store contract tests.
# The tests start their own server on a free loopback port; this only installs the binary.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then exit 0; fi
echo "redis-server not found; installing it from Debian's packages" >&2
if [ "$(id -u)" != "0" ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
# Debian's package may start a system instance; the tests do not use it.
command -v redis-server >/dev/null
