#!/usr/bin/env bash
# Browser test of the web dashboard (make test-dashboard): a real headless Chromium, driven by
# selenium, against the BUILT server with fake nodes and history. Screenshots: .build/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-$(swift build --show-bin-path)}"
if [ ! -x "$BIN/ksmfleet-server" ]; then
  echo "dashboard-test: $BIN/ksmfleet-server is not built (run swift build first)" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
if ! command -v chromedriver >/dev/null 2>&1 || ! { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
  echo "dashboard-test: installing Debian's chromium and chromium-driver"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! python3 -c "import selenium" >/dev/null 2>&1; then
  echo "dashboard-test: installing selenium from PyPI"
  python3 -m pip install --quiet selenium 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages selenium 2>/dev/null \
    || { $SUDO apt-get install -y -qq python3-pip >/dev/null && python3 -m pip install --quiet --break-system-packages selenium; }
fi
mkdir -p .build/screenshots
timeout 420 python3 scripts/dashboard_test.py --bin "$BIN" --screenshots .build/screenshots
