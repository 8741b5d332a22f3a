#!/usr/bin/env bash
# Benchmarks a release build of Kassa on a fresh database and prints the figures:
# start time, idle memory, and `kassa bench` runs (catalog reads/writes, full guest
# checkouts at 8 and 32 clients, credits).
#
#   scripts/bench.sh sqlite            # embedded SQLite (default)
#   scripts/bench.sh postgres          # PostgreSQL on 127.0.0.1:5432 (database kassa_bench)
#   DURATION=20 scripts/bench.sh postgres
set -euo pipefail
backend="${1:-sqlite}"
duration="${DURATION:-10}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release -q -p kassa
bin="$root/target/release/kassa"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

case "$backend" in
  sqlite) export DATABASE_URL="sqlite://$work/kassa.db" ;;
  postgres)
    psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS kassa_bench" -c "CREATE DATABASE kassa_bench" postgres
    # Local socket, no TLS: sqlx prefers TLS when the server offers it (Debian's does),
    # which costs ~20 % here and protects nothing on 127.0.0.1.
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/kassa_bench?sslmode=disable" ;;
  *) echo "usage: $0 sqlite|postgres" >&2; exit 2 ;;
esac
export KASSA_SERVER__PORT=0 RUST_LOG=warn KASSA_DATABASE__MAX_CONNECTIONS="${MAX_CONNECTIONS:-32}"
# The load generator is thousands of requests a second with one key from one address: far
# over any real client's rate limit, so the server it measures runs without limits.
export KASSA_RATE_LIMITS__ENABLED=false

start_ns=$(date +%s%N)
"$bin" serve > "$work/out" 2> "$work/err" &
pid=$!
until grep -q "listening on" "$work/out" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/err"; exit 1; }
  sleep 0.01
done
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
url=$(grep -o 'listening on [^ ]*' "$work/out" | cut -d' ' -f3)
eval "$(grep 'export KASSA_SECRET_KEY' "$work/out")"
sleep 1
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")

echo "== Kassa bench: $backend, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "start         ${ready_ms} ms to listening (fresh database, migrations included)"
echo "idle RSS      $((rss_kb / 1024)) MiB"
run() {
  echo
  echo "-- $*"
  "$bin" bench --url "$url" --duration "$duration" "$@"
}
run --scenario catalog-read --clients 8
run --scenario catalog-write --clients 8
run --scenario checkout --clients 8
run --scenario checkout --clients 32
run --scenario checkout-compact --clients 8
run --scenario checkout-compact --clients 32
run --scenario credits --clients 8
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
echo
echo "RSS after load $((rss_kb / 1024)) MiB"
