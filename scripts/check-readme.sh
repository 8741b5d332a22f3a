#!/usr/bin/env bash
# Runs the README's "Try it" block verbatim against a fresh `kassa serve --demo` on port
# 7070, failing on any command that fails or any answer that is an error (but the one
# deliberate decline).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${KASSA_BIN:-$root/target/debug/kassa}"
work="$(mktemp -d)"
cd "$work"
trap 'kill "$pid" 2>/dev/null || true; cd /; rm -rf "$work"' EXIT
env -u DATABASE_URL KASSA_SERVER__PORT=7070 "$bin" serve --demo > out 2> err &
pid=$!
until grep -q "listening on" out 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat err; exit 1; }
  sleep 0.05
done
eval "$(grep 'export KASSA_SECRET_KEY' out)"
# The block between the readme-check markers, without its ``` fences.
sed -n '/<!-- readme-check:start -->/,/<!-- readme-check:end -->/p' "$root/README.md" | grep -v '^<!--' | grep -v '^```' > try.sh
bash -eu try.sh > answers 2>&1
cat answers
# Every answer but the deliberate decline is a success.
errors=$(grep -o '"error":{"type":"[a-z_]*","code":"[a-z_]*"' answers | grep -vc 'card_declined' || true)
grep -q '"object":"order"' answers
grep -Eq '(^|\})404$' answers  # the cart without its client secret (after an answer without a newline)
grep -q '"decline_code":"generic_decline"' answers
grep -q 'test-processor/checkout/cs_' answers
grep -q '"amount_total":289' answers
# Each answer is one line after its status; the decline is a 402.
shown=$(grep -Ec '^[0-9]{3} [{[]' answers || true)
if [ "$shown" -lt 8 ]; then echo "expected 8 answers as '<status> <json>' lines, got $shown" >&2; exit 1; fi
grep -q '^402 {"error":{"type":"card_error"' answers
if [ "$errors" != "0" ]; then echo "README commands answered errors" >&2; exit 1; fi
echo "README examples: OK"
