#!/usr/bin/env bash
# Install what the browser tests (tests/browser, `pytest -m browser`) need, quietly and only when missing:
#   - Debian's chromium package (Playwright's own browser download is not available on our machines);
#   - Playwright for Python, into the project's environment (.venv when there is one, else python3).
# Safe to run again: when both are there it only prints their versions. apt needs root, or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
CHROMIUM="${COURSE_CHROMIUM:-/usr/bin/chromium}"
LOG="$(mktemp -t install_browser.XXXXXX.log)"
trap 'rm -f "$LOG"' EXIT

fail() {
    echo "install_browser.sh: $1 (log below)" >&2
    cat "$LOG" >&2
    exit 1
}

if [ ! -x "$CHROMIUM" ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || fail "chromium is missing and installing it needs root or sudo"
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >>"$LOG" 2>&1 || fail "apt-get update failed"
    $SUDO apt-get install -y -qq chromium >>"$LOG" 2>&1 || fail "apt-get install chromium failed"
    [ -x "$CHROMIUM" ] || fail "chromium was installed but $CHROMIUM is missing"
fi

if ! "$PYTHON" -c "import playwright.sync_api" >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q "playwright>=1.40" >>"$LOG" 2>&1 || fail "pip install playwright failed"
fi

echo "browser tests: $("$CHROMIUM" --version 2>/dev/null | head -n 1)," \
    "Playwright $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("playwright"))')"
