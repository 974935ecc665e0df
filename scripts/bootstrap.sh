#!/usr/bin/env bash
# Installs what MPR needs on a fresh machine: uv (from PyPI), ffmpeg (Debian's package), the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
UV="uv"
command -v uv >/dev/null 2>&1 || UV="python3 -m uv"
# ffmpeg for the services; PostgreSQL's server for the tests that run the production database for real.
need=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
if [ "${MPR_BOOTSTRAP_POSTGRES:-1}" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
# Debian's Chromium for the console's browser tests (Playwright drives it; it downloads no browser of its
# own). Like PostgreSQL, for the tests only: make dev does without.
if [ "${MPR_BOOTSTRAP_BROWSER:-${MPR_BOOTSTRAP_POSTGRES:-1}}" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
$UV sync --frozen --quiet
