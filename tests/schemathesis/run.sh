#!/usr/bin/env bash
# Schemathesis over Kassa's own /openapi.json: generated requests (valid and invalid, with
# U+0000, huge integers, odd types) against every operation of a real `kassa serve --demo`,
# the admin API with the secret key and the store API with the publishable key and a
# customer JWT. Fails on any 5xx and on any answer that does not match the document.
#
# Usage: tests/schemathesis/run.sh [sqlite] [postgres]     (default: sqlite)
# Builds nothing: expects the kassa binary (KASSA_BIN, default target/debug/kassa).
#
# Environment:
#   KASSA_SCHEMATHESIS_DATABASE_URL  postgres://… database in which a fresh schema is made
#                                    for the `postgres` run (dropped afterwards)
#   KASSA_SCHEMATHESIS_MAX_EXAMPLES  cases per operation and phase (default 20)
#   KASSA_SCHEMATHESIS_HEADERS       extra request headers, one `Name: value` per line
#   KASSA_SCHEMATHESIS_ARGS          extra arguments for `st run` (e.g. `--seed 1`)
#   KASSA_<SECTION>__<KEY>           passed on to `kassa serve` like any setting (raise rate
#                                    limits here)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/tests/schemathesis"

bin="${KASSA_BIN:-target/debug/kassa}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "run.sh: no kassa binary at $bin; run 'cargo build -p kassa' first (or set KASSA_BIN)" >&2
  exit 2
fi
python="$("$repo/.ci/python-env")"
st="$(dirname "$python")/st"
max_examples="${KASSA_SCHEMATHESIS_MAX_EXAMPLES:-20}"

# The customer JWT secret of the server under test; tokens are minted with it below.
jwt_secret="schemathesis-hs256-secret-0123456789abcdef"

mint_jwt() {
  "$python" - "$jwt_secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = b64(json.dumps({"sub": "schemathesis-customer", "email": "st@example.com",
                         "email_verified": True, "exp": int(time.time()) + 86400}).encode())
signature = hmac.new(sys.argv[1].encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
print(f"{header}.{claims}.{b64(signature)}")
PY
}

# What this script started, stopped and dropped whatever way it ends.
servers=()
schemas=()
cleanup() {
  for pid in "${servers[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for schema in "${schemas[@]}"; do
    psql "$KASSA_SCHEMATHESIS_DATABASE_URL" -q -c "SET client_min_messages = warning" \
      -c "DROP SCHEMA IF EXISTS $schema CASCADE" || true
  done
}
trap cleanup EXIT

run_one() {
  local backend="$1" work pid database_url
  work="$(mktemp -d "${TMPDIR:-/tmp}/kassa-schemathesis-$backend-XXXX")"
  case "$backend" in
    sqlite) database_url="sqlite://$work/kassa.db" ;;
    postgres)
      local base="${KASSA_SCHEMATHESIS_DATABASE_URL:?set KASSA_SCHEMATHESIS_DATABASE_URL for the postgres run}"
      local schema="st_$$_$RANDOM"
      psql "$base" -q -c "CREATE SCHEMA $schema" || return 1
      schemas+=("$schema")
      local sep='?'
      case "$base" in *\?*) sep='&' ;; esac
      database_url="$base${sep}options[search_path]=$schema"
      ;;
    *) echo "run.sh: unknown backend $backend (sqlite or postgres)" >&2; return 2 ;;
  esac
  (
    cd "$work"
    exec env DATABASE_URL="$database_url" KASSA_SERVER__PORT=0 \
      KASSA_CUSTOMER_AUTH__JWT_HS256_SECRET="$jwt_secret" "$bin" serve --demo > out 2> err
  ) &
  pid=$!
  servers+=("$pid")
  until grep -q "listening on" "$work/out" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then cat "$work/err" >&2; return 1; fi
    sleep 0.05
  done
  local url
  url="$(grep -o 'listening on http://[0-9.:]*' "$work/out" | cut -d' ' -f3)"
  eval "$(grep 'export KASSA_SECRET_KEY' "$work/out")" || return 1
  export KASSA_SECRET_KEY KASSA_PUBLISHABLE_KEY
  KASSA_CUSTOMER_JWT="$(mint_jwt)" || return 1
  export KASSA_CUSTOMER_JWT

  local headers=()
  while IFS= read -r h; do
    if [ -n "$h" ]; then headers+=(-H "$h"); fi
  done <<< "${KASSA_SCHEMATHESIS_HEADERS:-}"

  echo "== schemathesis on $backend ($url, $max_examples cases per operation)"
  local started=$SECONDS status=0
  # The document itself must be valid OpenAPI before anything is generated from it.
  curl -sf "$url/openapi.json" > "$work/openapi.json" || return 1
  "$(dirname "$python")/openapi-spec-validator" "$work/openapi.json" || return 1
  # Real objects for the cases to aim at, as dictionaries appended to the configuration.
  export KASSA_SCHEMATHESIS_HOOKS="$here/hooks.py"
  cp "$here/schemathesis.toml" "$work/schemathesis.toml"
  "$python" "$here/fixtures.py" "$url" >> "$work/schemathesis.toml" || return 1
  # From the work directory: schemathesis keeps its cache there, not in the repository.
  # shellcheck disable=SC2086
  (cd "$work" && "$st" --config-file "$work/schemathesis.toml" run "$url/openapi.json" \
    --max-examples "$max_examples" --report junit --report-dir "$work/report" \
    "${headers[@]}" ${KASSA_SCHEMATHESIS_ARGS:-}) || status=$?
  # A 5xx the checks could not see (a background job, a webhook) is still a failure.
  if grep -q "internal error" "$work/err"; then
    echo "== the server logged internal errors:" >&2
    grep -A3 "internal error" "$work/err" | head -60 >&2
    status=1
  fi
  echo "== schemathesis on $backend: exit $status after $((SECONDS - started)) s (server log: $work/err)"
  return "$status"
}

# Inside `run_one … || failed=1` errexit is off: run_one checks its own steps.
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(sqlite)
failed=0
for b in "${backends[@]}"; do
  run_one "$b" || failed=1
done
exit "$failed"
