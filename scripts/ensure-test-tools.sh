#!/bin/sh
# Installs the Debian tools the test suite drives, when they are missing:
#   promtool (package prometheus) and kubectl (kubernetes-client) for the deployment tests,
#   chromium for the dashboard's browser test (Playwright cannot download browsers offline).
# Idempotent and silent when everything is there. Needs root (or sudo) and apt-get;
# otherwise it says what is missing and the tests that need it explain themselves.
set -eu

missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v kubectl >/dev/null 2>&1 || missing="$missing kubernetes-client"
if [ -z "${ARENA_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 \
    && ! command -v chromium-browser >/dev/null 2>&1; then
    missing="$missing chromium"
fi
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-tools: missing$missing and no apt-get; install them by hand" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "ensure-test-tools: missing$missing; run as root to install them" >&2
        exit 0
    fi
fi
echo "ensure-test-tools: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
