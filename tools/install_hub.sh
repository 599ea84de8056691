#!/usr/bin/env bash
# Install what the class-hub test (tests/browser/test_hub.py) needs besides the Python environment, quietly and only
# when missing: JupyterHub's proxy, configurable-http-proxy, from npm into build/hub-proxy (git-ignored, project-local;
# nothing is installed globally). Needs Node.js and npm. Safe to run again: when it is there it only prints its version.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="build/hub-proxy"
CHP="$PREFIX/node_modules/.bin/configurable-http-proxy"
VERSION="${CHP_VERSION:-^5}"   # JupyterHub 5 and 6 drive configurable-http-proxy 4.x or 5.x
LOG="$(mktemp -t install_hub.XXXXXX.log)"
trap 'rm -f "$LOG"' EXIT

fail() {
    echo "install_hub.sh: $1 (log below)" >&2
    cat "$LOG" >&2
    exit 1
}

if [ ! -x "$CHP" ]; then
    command -v npm >/dev/null || fail "npm is missing: install Node.js 18 or newer (it brings npm)"
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
        "configurable-http-proxy@$VERSION" >>"$LOG" 2>&1 || fail "npm install configurable-http-proxy failed"
    [ -x "$CHP" ] || fail "configurable-http-proxy was installed but $CHP is missing"
fi

echo "hub test: configurable-http-proxy $("$CHP" --version 2>/dev/null | head -n 1) in $PREFIX, node $(node --version)"
