#!/usr/bin/env bash
# Installs what CityGrid Command needs on a Debian 12 machine, once: Debian packages,
# the Python virtualenv, and the npm front-end libraries vendored into /static.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql-15-postgis-3 postgresql-client-15 mosquitto mosquitto-clients ffmpeg chromium
              fonts-noto-cjk python3-venv curl ca-certificates
              python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
# Node.js may come from elsewhere (with its own npm); take Debian's only when there is none.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian packages start their own daemons where they can; ours run under ./.run.
if command -v service >/dev/null 2>&1; then
  service mosquitto stop >/dev/null 2>&1 || true
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.citygrid-installed
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating the virtualenv (.venv)"
  "$PYTHON" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages (pinned by requirements.lock)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c requirements.lock -e '.[test]'
  echo "$want" > "$stamp"
fi

web=command/web
vendor=$web/static/vendor
lockhash=$(sha256sum $web/package-lock.json | cut -d' ' -f1)
if [ "$(cat $vendor/.installed 2>/dev/null)" != "$lockhash" ]; then
  echo "setup: vendoring front-end libraries from npm"
  (cd $web && npm ci --no-audit --no-fund --loglevel=error)
  scripts/vendor-web.sh $web/node_modules "$vendor"
  echo "$lockhash" > "$vendor/.installed"
fi
