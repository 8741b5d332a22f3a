#!/usr/bin/env bash
# Renewals benchmark: N subscriptions fall due at once and are renewed and paid off-session,
# by one server and then by two servers sharing one PostgreSQL database (fresh each time).
#
#   scripts/bench-renewals.sh                 # release build, 10,000 subscriptions
#   BIN=target/debug/kassa SUBSCRIPTIONS=2000 scripts/bench-renewals.sh
#   DB=kassa_bench_renewals SERVERS="1 2" scripts/bench-renewals.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ -z "${BIN:-}" ]; then cargo build --release -q -p kassa; BIN="$root/target/release/kassa"; fi
db="${DB:-kassa_bench_renewals}"
subscriptions="${SUBSCRIPTIONS:-10000}"
work="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; for f in "$work"/err*; do [ -s "$f" ] && { echo "-- server log $f"; tail -5 "$f"; }; done; rm -rf "$work"' EXIT
export KASSA_SERVER__PORT=0 RUST_LOG=warn KASSA_DATABASE__MAX_CONNECTIONS="${MAX_CONNECTIONS:-16}"
export KASSA_RATE_LIMITS__ENABLED=false


start_server() {
  local out="$work/out$1"
  # Called in a command substitution (a subshell): the pid goes to a file, not to a variable.
  "$BIN" serve > "$out" 2> "$work/err$1" &
  echo $! > "$work/pid$1"
  until grep -q "listening on" "$out" 2>/dev/null; do
    kill -0 "$(cat "$work/pid$1")" 2>/dev/null || { cat "$work/err$1"; exit 1; }
    sleep 0.05
  done
  grep -o 'listening on [^ ]*' "$out" | cut -d' ' -f3
}

for n in ${SERVERS:-1 2}; do
  psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS ${db}_$n" -c "CREATE DATABASE ${db}_$n" postgres
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${db}_$n?sslmode=disable"
  urls=()
  for i in $(seq 1 "$n"); do
    urls+=("$(start_server "$i")")
    pids+=("$(cat "$work/pid$i")")
    if [ "$i" = 1 ]; then eval "$(grep "export KASSA_SECRET_KEY" "$work/out1")"; fi
  done
  also=()
  for u in "${urls[@]:1}"; do also+=(--also-url "$u"); done
  echo
  echo "== renewals: $n server(s), $subscriptions subscriptions, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $BIN"
  "$BIN" bench --scenario renewals --url "${urls[0]}" "${also[@]}" --subscriptions "$subscriptions" \
    --clients "${CLIENTS:-16}" --clocks "${CLOCKS:-20}" --database-url "$DATABASE_URL"
  # A server still billing may take long to stop gracefully: the run is over, its database is
  # thrown away, so it is stopped hard (it holds database connections).
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
done
