#!/usr/bin/env bash
# Several servers, one database, one server killed under load.
#
# Three `kassa serve` share one fresh PostgreSQL database behind HAProxy (Debian's package,
# health-checking each server's /ready). `kassa bench` measures full guest checkouts through
# the proxy with 1, 2 and 3 servers behind it; then checkouts and credit top-ups run through
# the proxy while one server is SIGKILLed and started again. After the webhooks have landed
# and `kassa reconcile` has run, SQL checks the books: every checkout answered 200 has
# exactly one order, every succeeded payment exactly one order or credit entry, no order
# without a paid payment, stock = start − sold, every processor event handled once, every
# order and top-up announced once, and delivered to the merchant's webhook endpoint (a small
# receiver beside the cluster): every order.created and credits.added event arrived, none
# more often than it was attempted (a duplicate only from a retry or an attempt the kill cut
# off, never from two servers racing). Any broken invariant fails the script (exit 1).
#
#   KASSA_BIN=target/debug/kassa tests/cluster/run.sh
#   DURATION=10 CLIENTS=32 KASSA_BIN=target/release/kassa tests/cluster/run.sh
#
# Figures from a debug build (as CI runs it) measure the debug build; scripts/bench.sh
# measures a release build of one server.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${KASSA_BIN:-$root/target/debug/kassa}"
duration="${DURATION:-5}"
clients="${CLIENTS:-16}"
kill_run="${KILL_RUN_SECONDS:-12}"
pg="${KASSA_CLUSTER_PG:-postgres://postgres@127.0.0.1:5432}"
db="kassa_cluster_$$"
# `kassa bench` gives each product of the checkout scenario this much tracked stock.
start_stock=100000000
[ -x "$bin" ] || { echo "cluster: no kassa binary at $bin (set KASSA_BIN)" >&2; exit 2; }
command -v psql > /dev/null || { echo "cluster: psql is needed" >&2; exit 2; }

if ! command -v haproxy > /dev/null; then
  echo "cluster: installing haproxy (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq haproxy > /dev/null
fi

work="$(mktemp -d)"
declare -A server_pid=()
haproxy_pid=""
receiver_pid=""
cleanup() {
  for i in "${!server_pid[@]}"; do kill "${server_pid[$i]}" 2> /dev/null || true; done
  [ -n "$receiver_pid" ] && kill "$receiver_pid" 2> /dev/null || true
  [ -n "$haproxy_pid" ] && kill "$haproxy_pid" 2> /dev/null || true
  wait 2> /dev/null || true
  psql "$pg/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" > /dev/null 2>&1 || true
  if [ "${KEEP_WORK:-}" = 1 ]; then echo "cluster: logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

psql "$pg/postgres" -q -c "CREATE DATABASE $db"
# No TLS on 127.0.0.1 (sqlx prefers it when offered; it protects nothing here).
export DATABASE_URL="$pg/$db?sslmode=disable"
sql() { psql "$pg/$db" -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

declare -a port=() front=()
for i in 1 2 3; do port[$i]=$(free_port); front[$i]=$(free_port); done
proxy="http://127.0.0.1:${front[3]}"

# Every server: the proxy's address as its public URL (hosted pages, webhooks), a small pool
# each (three servers share the database's connections), no rate limits (the load generator
# is one client far over any real client's limit; and limits count per server).
export KASSA_SERVER__HOST=127.0.0.1 KASSA_SERVER__PUBLIC_URL="$proxy" \
  KASSA_PROCESSOR__TEST__WEBHOOK_URL="$proxy/webhooks/stripe" \
  KASSA_DATABASE__MAX_CONNECTIONS=10 KASSA_RATE_LIMITS__ENABLED=false RUST_LOG="${RUST_LOG:-warn}" \
  KASSA_WEBHOOKS__ALLOW_PRIVATE_URLS=true

# Keys before any server: `keys create` migrates the fresh database too.
KASSA_SECRET_KEY=$("$bin" keys create --kind secret --name cluster | awk '{print $2}')
KASSA_PUBLISHABLE_KEY=$("$bin" keys create --kind publishable --name cluster | awk '{print $2}')
export KASSA_SECRET_KEY KASSA_PUBLISHABLE_KEY

start_server() {
  local i=$1
  KASSA_SERVER__PORT="${port[$i]}" "$bin" serve >> "$work/server$i.out" 2>> "$work/server$i.err" &
  server_pid[$i]=$!
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:${port[$i]}/ready" > /dev/null 2>&1 && return 0
    kill -0 "${server_pid[$i]}" 2> /dev/null || break
    sleep 0.1
  done
  echo "cluster: server $i did not start" >&2
  cat "$work/server$i.err" >&2
  exit 1
}

for i in 1 2 3; do start_server "$i"; done

# One proxy, three fronts: the first server only, the first two, all three. `retries` and
# `redispatch` retry only a connection that failed (the request never reached a server),
# never a request a server may have acted on.
{
  cat << EOF
global
  maxconn 2048
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch
  option httpchk GET /ready
  http-check expect status 200
  default-server check inter 500ms fall 2 rise 2
EOF
  for n in 1 2 3; do
    echo "listen kassa_$n"
    echo "  bind 127.0.0.1:${front[$n]}"
    echo "  balance roundrobin"
    for i in $(seq 1 "$n"); do echo "  server kassa$i 127.0.0.1:${port[$i]}"; done
  done
} > "$work/haproxy.cfg"
haproxy -c -q -f "$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 &
haproxy_pid=$!
for _ in $(seq 1 100); do curl -fsS "$proxy/ready" > /dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$proxy/ready" > /dev/null

# The merchant's webhook endpoint, registered before any event it subscribes to.
receiver_port=$(free_port)
python3 "$root/tests/cluster/receiver.py" "$receiver_port" "$work/received.txt" &
receiver_pid=$!
for _ in $(seq 1 50); do
  curl -s -o /dev/null -X POST -d '{"id":"probe","type":"probe"}' "http://127.0.0.1:$receiver_port/" && break
  sleep 0.1
done
: > "$work/received.txt"
curl -fsS "$proxy/admin/webhook-endpoints" -H "Authorization: Bearer $KASSA_SECRET_KEY" -H 'Content-Type: application/json' \
  -d "{\"url\": \"http://127.0.0.1:$receiver_port/hooks\", \"enabled_events\": [\"order.created\", \"credits.added\"]}" > /dev/null

bench() { "$bin" bench --scenario checkout-compact --warmup 1 "$@"; }

echo "== Kassa cluster: $(nproc) cores, $(basename "$(dirname "$bin")") build, PostgreSQL, HAProxy $(haproxy -v | head -1 | awk '{print $3}')"
echo "-- throughput: full guest checkouts (cart, token, pay) through the proxy, $clients clients, $duration s"
declare -a ops=()
for n in 1 2 3; do
  bench --url "http://127.0.0.1:${front[$n]}" --clients "$clients" --duration "$duration" \
    --record "$work/answered_$n.txt" > "$work/bench_$n.txt"
  ops[$n]=$(awk '/^throughput/ {print $2}' "$work/bench_$n.txt")
  printf 'servers %d   %8s checkouts/s   (%s)\n' "$n" "${ops[$n]}" \
    "$(grep '^latency' "$work/bench_$n.txt" | sed 's/^latency *//')"
  grep '^errors' "$work/bench_$n.txt" || true
done

echo "-- a server killed under load: checkouts and credit top-ups for ${kill_run} s, server 2 SIGKILLed after 4 s"
bench --url "$proxy" --clients "$clients" --duration "$kill_run" --record "$work/answered_kill.txt" \
  > "$work/bench_kill.txt" &
checkouts=$!
"$bin" bench --url "$proxy" --scenario credits --clients 4 --warmup 1 --duration "$kill_run" \
  > "$work/bench_credits.txt" &
credits=$!
sleep 5
kill -KILL "${server_pid[2]}"
wait "${server_pid[2]}" 2> /dev/null || true
echo "killed server 2 (pid ${server_pid[2]})"
sleep 2
start_server 2
echo "server 2 started again (pid ${server_pid[2]})"
wait "$checkouts" "$credits"
grep -E '^(operations|throughput|errors)' "$work/bench_kill.txt" | sed 's/^/checkouts  /'
grep -E '^(operations|errors|balance)' "$work/bench_credits.txt" | sed 's/^/credits    /'

# Webhooks the killed server had claimed wait for their lease to run out (two minutes), then
# another server delivers them.
echo "-- waiting for every processor event to be delivered"
for _ in $(seq 1 240); do
  left=$(sql -c "SELECT count(*) FROM tp_events WHERE delivered_at IS NULL")
  [ "$left" = 0 ] && break
  sleep 1
done
echo "undelivered processor events: $left"

echo "-- kassa reconcile"
"$bin" reconcile | sed 's/^/  /'
# What reconcile gave back announces itself by webhook as well.
for _ in $(seq 1 60); do
  [ "$(sql -c "SELECT count(*) FROM tp_events WHERE delivered_at IS NULL")" = 0 ] && break
  sleep 1
done
# Deliveries to the merchant the killed server had claimed wait for their lease (twice
# webhooks.timeout_ms plus 5 s), then another server makes them.
echo "-- waiting for every webhook to reach the merchant"
for _ in $(seq 1 120); do
  pending=$(sql -c "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
  unfanned=$(sql -c "SELECT count(*) FROM events WHERE webhooks_fanned_out_at IS NULL")
  [ "$pending" = 0 ] && [ "$unfanned" = 0 ] && break
  sleep 1
done
echo "webhook deliveries pending: $pending, events not fanned out: $unfanned"
for i in 1 2 3; do kill -TERM "${server_pid[$i]}"; done
for i in 1 2 3; do wait "${server_pid[$i]}" 2> /dev/null || true; done
server_pid=()

echo "-- invariants"
sql -c "CREATE TABLE cluster_answered (cart TEXT NOT NULL, order_id TEXT NOT NULL)"
cat "$work"/answered_*.txt | sql -c "\\copy cluster_answered FROM STDIN WITH (FORMAT text, DELIMITER ' ')"
failed=0
# check <name> <query returning the offending rows>
check() {
  local name=$1 query=$2 rows
  rows=$(sql -c "$query")
  if [ -z "$rows" ]; then
    echo "ok    $name"
  else
    echo "FAIL  $name"
    echo "$rows" | head -20 | sed 's/^/        /'
    failed=1
  fi
}
count() { sql -c "$1"; }

echo "checkouts answered 200: $(count "SELECT count(*) FROM cluster_answered"), orders: $(count "SELECT count(*) FROM orders")," \
  "payments: $(count "SELECT string_agg(status || ' ' || n, ', ' ORDER BY status) FROM (SELECT status, count(*) n FROM payments GROUP BY status) s")"
check "every checkout answered 200 has exactly one order, the one answered" \
  "SELECT a.cart, a.order_id, count(o.id) FROM cluster_answered a LEFT JOIN orders o ON o.cart = a.cart
   GROUP BY a.cart, a.order_id HAVING count(o.id) <> 1 OR bool_and(o.id IS DISTINCT FROM a.order_id)"
check "every succeeded or authorized cart payment has exactly one order" \
  "SELECT p.id, p.status, count(o.id) FROM payments p LEFT JOIN orders o ON o.payment = p.id
   WHERE p.purpose = 'order' AND p.status IN ('succeeded', 'authorized') GROUP BY p.id, p.status HAVING count(o.id) <> 1"
check "no order without a succeeded or authorized payment" \
  "SELECT o.id, p.status FROM orders o LEFT JOIN payments p ON p.id = o.payment
   WHERE p.status IS NULL OR p.status NOT IN ('succeeded', 'authorized')"
check "no cart paid twice: at most one kept payment per cart" \
  "SELECT cart, count(*) FROM payments WHERE purpose = 'order' AND status IN ('succeeded', 'authorized')
   GROUP BY cart HAVING count(*) > 1"
check "nothing left to give back (void_pending) after reconcile" \
  "SELECT id, void_reason FROM payments WHERE status = 'void_pending'"
check "stock = start - sold, for every product of the run" \
  "SELECT p.id, p.inventory_quantity, coalesce(s.sold, 0) FROM products p LEFT JOIN
     (SELECT l.product, sum(l.stocked) AS sold FROM order_lines l JOIN orders o ON o.id = l.order_id
      WHERE o.status <> 'canceled' GROUP BY l.product) s ON s.product = p.id
   WHERE p.track_inventory AND p.name LIKE 'Bench item %' AND p.inventory_quantity <> $start_stock - coalesce(s.sold, 0)"
check "reserved stock = what open carts hold" \
  "SELECT p.id, p.inventory_reserved FROM products p WHERE p.inventory_reserved <>
   (SELECT coalesce(sum(l.reserved), 0) FROM cart_lines l JOIN carts c ON c.id = l.cart WHERE l.product = p.id AND c.status = 'open')"
check "every succeeded top-up payment credited exactly once" \
  "SELECT p.id, count(e.id) FROM payments p LEFT JOIN credit_entries e ON e.payment = p.id AND e.kind = 'top_up'
   WHERE p.purpose = 'credits' AND p.status = 'succeeded' GROUP BY p.id HAVING count(e.id) <> 1"
check "no credit without a succeeded payment" \
  "SELECT e.id, p.status FROM credit_entries e LEFT JOIN payments p ON p.id = e.payment
   WHERE e.kind = 'top_up' AND (p.status IS NULL OR p.status <> 'succeeded')"
check "every balance equals its ledger" \
  "SELECT c.id, c.credit_balance, coalesce(sum(e.amount), 0) FROM customers c LEFT JOIN credit_entries e ON e.customer = c.id
   GROUP BY c.id, c.credit_balance HAVING c.credit_balance <> coalesce(sum(e.amount), 0)"
check "every processor event delivered (the delivery job's items)" \
  "SELECT id, type, attempts FROM tp_events WHERE delivered_at IS NULL"
# Kassa records the events it acts on (payments, charges, checkout sessions); it acknowledges
# the others (customer.created, …) without a record.
check "every processor event Kassa acts on recorded (handled) by Kassa" \
  "SELECT t.id, t.type FROM tp_events t LEFT JOIN processor_events e ON e.id = t.id WHERE e.id IS NULL
   AND (t.type LIKE 'payment\\_intent.%' OR t.type LIKE 'charge.%' OR t.type LIKE 'checkout.session.%')"
check "every order announced once (order.created)" \
  "SELECT o.id, count(e.id) FROM orders o LEFT JOIN events e ON e.object_id = o.id AND e.type = 'order.created'
   GROUP BY o.id HAVING count(e.id) <> 1"
check "every credit entry announced once (credits.added)" \
  "SELECT c.id, count(e.id) FROM credit_entries c LEFT JOIN events e ON e.object_id = c.id AND e.type = 'credits.added'
   WHERE c.kind = 'top_up' GROUP BY c.id HAVING count(e.id) <> 1"
sql -c "CREATE TABLE cluster_received (event TEXT NOT NULL, type TEXT NOT NULL)"
sql -c "\\copy cluster_received FROM '$work/received.txt' WITH (FORMAT text, DELIMITER ' ')"
check "every order.created and credits.added event delivered to the merchant's endpoint" \
  "SELECT e.id, e.type FROM events e WHERE e.type IN ('order.created', 'credits.added')
   AND NOT EXISTS (SELECT 1 FROM cluster_received r WHERE r.event = e.id)
   UNION ALL SELECT e.id, d.status FROM events e JOIN webhook_deliveries d ON d.event = e.id
   WHERE d.status <> 'succeeded'"
check "no webhook received more often than it was attempted (no delivery twice by a race)" \
  "SELECT r.event, count(*), d.claims FROM cluster_received r JOIN webhook_deliveries d ON d.event = r.event
   GROUP BY r.event, d.claims HAVING count(*) > d.claims"
echo "webhooks received: $(count "SELECT count(*) FROM cluster_received"), of them duplicates (retries, or attempts" \
  "the kill cut off): $(count "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM cluster_received GROUP BY event) s")"
echo "processor events delivered more than once (at least once; the effects above happened once): $(count \
  "SELECT count(*) FROM processor_events WHERE deliveries > 1")"

echo
echo "== throughput through HAProxy ($(basename "$(dirname "$bin")") build, $(nproc) cores, $clients clients):" \
  "1 server ${ops[1]}/s, 2 servers ${ops[2]}/s, 3 servers ${ops[3]}/s"
if [ "$failed" != 0 ]; then
  echo "cluster: invariants broken" >&2
  exit 1
fi
echo "cluster: all invariants hold"
