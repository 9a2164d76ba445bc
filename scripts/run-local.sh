#!/usr/bin/env bash
# The local stack behind `make run`: the Cosmos-compatible store (in memory, plain HTTP,
# 127.0.0.1), `acr-webhook init`, then `acr-webhook up` serving spin.toml with a development
# webhook key and a development read key (for the read API and the audit-trail page).
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST_BIN="${ACR_WEBHOOK_HOST:-target/release/acr-webhook}"
STORE_PORT="${COSMOS_PORT:-8081}"
LISTEN="${LISTEN:-127.0.0.1:3000}"
# The Cosmos emulator's well-known, public key: accepted by the LOCAL store only (which does
# not check signatures). Never use it, or this script, for a real account.
EMULATOR_KEY='C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=='
DEV_WEBHOOK_KEY="${DEV_WEBHOOK_KEY:-dev-$(python3 -c 'import secrets; print(secrets.token_hex(12))')}"
DEV_READ_KEY="${DEV_READ_KEY:-read-$(python3 -c 'import secrets; print(secrets.token_hex(12))')}"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped."
}
trap cleanup INT TERM EXIT

node node_modules/@vercel/cosmosdb-server/lib/cli.js -p "$STORE_PORT" --host 127.0.0.1 --no-ssl \
  > .local-store.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$STORE_PORT") 2>/dev/null && break
  sleep 0.1
done

export SPIN_VARIABLE_COSMOS_ENDPOINT="http://127.0.0.1:$STORE_PORT"
export SPIN_VARIABLE_COSMOS_KEY="$EMULATOR_KEY"
export SPIN_VARIABLE_WEBHOOK_KEYS="$DEV_WEBHOOK_KEY"
export SPIN_VARIABLE_READ_KEYS="$DEV_READ_KEY"

"$HOST_BIN" init --from spin.toml

"$HOST_BIN" up --from spin.toml --listen "$LISTEN" &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}") 2>/dev/null && break
  sleep 0.1
done

cat <<MSG

acr-webhook is up on http://$LISTEN (store: http://127.0.0.1:$STORE_PORT, in memory).
Development webhook key: $DEV_WEBHOOK_KEY
Development read key:    $DEV_READ_KEY

The audit-trail page: http://$LISTEN/  (paste the read key there)

  # a ping (204 when the store answers a signed read)
  curl -i -X POST http://$LISTEN/acr -H 'Authorization: Bearer $DEV_WEBHOOK_KEY' \\
       -H 'Content-Type: application/json' -d '{"action":"ping"}'

  # a push (201 the first time, 200 when sent again)
  curl -i -X POST http://$LISTEN/acr -H 'Authorization: Bearer $DEV_WEBHOOK_KEY' \\
       -H 'Content-Type: application/json' --data @tests/fixtures/acr/push.json

  # the stored events, newest first, and their counts per hour and action
  curl -s http://$LISTEN/events -H 'Authorization: Bearer $DEV_READ_KEY'
  curl -s http://$LISTEN/events/summary -H 'Authorization: Bearer $DEV_READ_KEY'

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
