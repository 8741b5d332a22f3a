#!/usr/bin/env bash
# The browser suite: a buyer in Chromium on Kassa's hosted checkout pages.
# Builds nothing: expects the kassa binary (KASSA_BIN, default target/debug/kassa; run
# `cargo build -p kassa` first). Installs Debian's Chromium if missing (Playwright's own
# browser download is never used). Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

bin="${KASSA_BIN:-target/debug/kassa}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "run.sh: no kassa binary at $bin; run 'cargo build -p kassa' first (or set KASSA_BIN)" >&2
  exit 2
fi
export KASSA_BIN="$bin"

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "run.sh: installing chromium (apt-get)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2 || true
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi

python="$("$repo/.ci/python-env")"

# axe-core (npm) checks the hosted pages' accessibility; installed once into a cache outside
# the repository, at a pinned major version.
axe_dir="${KASSA_AXE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kassa-browser-npm}"
if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ]; then
  echo "run.sh: installing axe-core (npm)" >&2
  mkdir -p "$axe_dir"
  npm install --silent --no-save --no-audit --no-fund --prefix "$axe_dir" axe-core@4 >&2
fi
export KASSA_AXE_JS="$axe_dir/node_modules/axe-core/axe.min.js"

# -p no:cacheprovider: leave no .pytest_cache in the repository.
exec "$python" -m pytest -q --tb=short -p no:cacheprovider "$repo/tests/browser" "$@"
