#!/usr/bin/env bash
# Make sure the real-browser test of the query browser has a Chromium, the way `make setup` makes
# sure there is a virtual environment. Called by `make test` and `make test-browser`.
#
#   1. one is there: $VRLIB_CHROMIUM, `chromium` / `chromium-browser` on PATH, or Playwright's own;
#   2. Debian's `chromium` through apt-get, where we are root or have password-less sudo;
#   3. `python -m playwright install chromium`, where its download host answers;
#   4. otherwise one line saying which of these to run, and exit status 1 (within seconds).
#
# Usage: .ci/ensure_chromium.sh PYTHON   (the virtual environment's python)
set -euo pipefail
PY="${1:-.venv/bin/python}"

have_chromium() {
    if [ -n "${VRLIB_CHROMIUM:-}" ] && [ -x "$VRLIB_CHROMIUM" ]; then return 0; fi
    if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
        return 0
    fi
    # Playwright's own build, if `playwright install chromium` ran before (no browser started).
    "$PY" - <<'PY' 2>/dev/null
import os, sys
from playwright.sync_api import sync_playwright
with sync_playwright() as pw:
    sys.exit(0 if os.path.exists(pw.chromium.executable_path) else 1)
PY
}

if have_chromium; then exit 0; fi

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo"
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    echo "make test: installing Debian's chromium for the real-browser test (apt-get)..."
    if $SUDO apt-get update -qq && \
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
        have_chromium && exit 0
    fi
    echo "make test: apt-get could not install chromium; trying Playwright's download" >&2
fi

if "$PY" - <<'PY'
import socket, sys
for host in ("cdn.playwright.dev", "playwright.download.prss.microsoft.com"):
    try:
        socket.create_connection((host, 443), timeout=3).close()
        sys.exit(0)
    except OSError:
        pass
sys.exit(1)
PY
then
    echo "make test: installing Playwright's chromium for the real-browser test..."
    if "$PY" -m playwright install chromium && have_chromium; then exit 0; fi
fi

echo "error: the real-browser test needs Chromium, and none could be installed here: run" \
    "\`sudo apt-get install -y chromium\` (Debian/Ubuntu) or \`$PY -m playwright install chromium\`," \
    "or set VRLIB_CHROMIUM=/path/to/chromium" >&2
exit 1
