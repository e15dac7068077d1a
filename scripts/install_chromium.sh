#!/usr/bin/env bash
# Install Debian's Chromium and ChromeDriver (headless browser tests of the leaderboard site and the human-study
# pages). Idempotent; needs root and apt. Without them it says so and the browser tests skip with that reason.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: chromium/chromedriver missing and cannot be installed here (needs root and apt-get);" \
       "the browser tests will skip" >&2
  exit 0
fi
echo "setup: installing chromium and chromium-driver (Debian packages)" >&2
if ! apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
    || echo "setup: apt-get could not install chromium; the browser tests will skip" >&2
fi
exit 0
