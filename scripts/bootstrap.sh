#!/usr/bin/env bash
# Installs what MPR needs on a fresh machine: uv (from PyPI), ffmpeg (Debian's package), the workspace.
set -euo pipefail

# Another apt (unattended-upgrades on a fresh machine, a second terminal) may hold the package locks:
# wait for it, up to this many seconds, instead of failing at once.
APT_LOCK_TIMEOUT="${MPR_APT_LOCK_TIMEOUT:-600}"
SUDO=""

# apt-get install waits for the dpkg lock itself (DPkg::Lock::Timeout).
apt_install() {
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT" \
    install -y -qq --no-install-recommends "$@" >/dev/null
}

# apt-get update is given the same option, but apt (2.6) does not wait for the lists lock with it:
# retry while the only error is that lock, until the same timeout.
apt_update() {
  local deadline=$((SECONDS + APT_LOCK_TIMEOUT)) err said=""
  while :; do
    if err=$($SUDO apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT" update -qq 2>&1 >/dev/null); then
      [ -z "$err" ] || printf '%s\n' "$err" >&2
      return 0
    fi
    if [[ $err == *"Could not get lock"* ]] && ((SECONDS < deadline)); then
      if [ -z "$said" ]; then
        echo "bootstrap: another apt holds its lock; waiting for it (up to ${APT_LOCK_TIMEOUT} s)" >&2
        said=1
      fi
      sleep "${MPR_APT_LOCK_RETRY:-2}"
      continue
    fi
    printf '%s\n' "$err" >&2
    return 1
  done
}

main() {
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
  # The font of text watermarks (FFmpeg's drawtext; mpr_transcoder.ffmpeg.filtergraph.WATERMARK_FONT).
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
  if [ "${MPR_BOOTSTRAP_POSTGRES:-1}" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need+=(postgresql)
  fi
  # Debian's Chromium for the console's browser tests (Playwright drives it; it downloads no browser of its
  # own). Like PostgreSQL, for the tests only: make dev does without.
  if [ "${MPR_BOOTSTRAP_BROWSER:-${MPR_BOOTSTRAP_POSTGRES:-1}}" = 1 ] && [ ! -x /usr/bin/chromium ]; then
    need+=(chromium)
  fi
  # Debian's nginx for the test that runs deploy/nginx.conf for real (tests/system/test_compose_topology.py);
  # make dev does without.
  if [ "${MPR_BOOTSTRAP_POSTGRES:-1}" = 1 ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    need+=(nginx)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    apt_update
    apt_install "${need[@]}"
  fi
  # Installed packages compiled once here, not by every process that imports them.
  $UV sync --frozen --quiet --compile-bytecode
}

# Sourced (the tests call apt_update and apt_install alone): define the functions, run nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
