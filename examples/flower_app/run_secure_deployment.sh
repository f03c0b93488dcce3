#!/usr/bin/env bash
# Local deployment with TLS + SuperNode authentication: keys from make_deployment.py, 1 SuperLink
# (--enable-supernode-auth), N registered SuperNodes, 1 UNREGISTERED SuperNode (must be refused),
# `flwr run` of this app for 1 round on N synthetic clients. Every process started here is
# stopped by its PID at exit. Usage (from the repo root, fedpia + flwr installed in $VENV):
#   bash examples/flower_app/run_secure_deployment.sh [num_nodes=2] [work_dir=$(mktemp -d)]
set -euo pipefail
N=${1:-2}
WORK=${2:-$(mktemp -d /tmp/fedpia-secure.XXXX)}
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd)
APP=$(cd "$(dirname "$0")" && pwd)
VENV=${VENV:-$(cd "$APP/../.." && pwd)/.venv}
export PATH="$VENV/bin:$PATH"
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
KEYS=$WORK/keys LOGS=$WORK/logs OUT=$WORK/out
mkdir -p "$LOGS"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 90); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 1; done
  echo "nothing listens on port $1 (see $LOGS)" >&2; return 1; }

NODES=$(seq -s, -f "hospital-%g" 0 $((N - 1))),unregistered
python "$APP/make_deployment.py" "$KEYS" --nodes "$NODES" >"$LOGS/commands.sh"
export FLWR_HOME=$WORK/flwr-home
mkdir -p "$FLWR_HOME" && cp "$KEYS/flwr-config.toml" "$FLWR_HOME/config.toml"

flower-superlink --host 127.0.0.1 --port 8000 --database "$WORK/state.db" \
  --ssl-ca-certfile "$KEYS/ca.crt" --ssl-certfile "$KEYS/server.pem" --ssl-keyfile "$KEYS/server.key" \
  --enable-supernode-auth --disable-runtime-dependency-installation >"$LOGS/superlink.log" 2>&1 &
PIDS+=($!)
wait_port 8000
for ((k = 0; k < N; k++)); do  # the operator registers the hospitals' public keys
  flwr supernode register "$KEYS/nodes/hospital-$k/supernode.pub" fedpia-tls --name "hospital-$k"
done
for ((k = 0; k < N; k++)); do
  flower-supernode --superlink 127.0.0.1:8000 --root-certificates "$KEYS/ca.crt" \
    --auth-supernode-private-key "$KEYS/nodes/hospital-$k/supernode.key" --port $((9094 + k)) \
    --node-config "partition-id=$k num-partitions=$N" >"$LOGS/supernode-$k.log" 2>&1 &
  PIDS+=($!)
done
flower-supernode --superlink 127.0.0.1:8000 --root-certificates "$KEYS/ca.crt" \
  --auth-supernode-private-key "$KEYS/nodes/unregistered/supernode.key" --port $((9094 + N)) \
  --node-config "partition-id=0 num-partitions=$N" >"$LOGS/supernode-unregistered.log" 2>&1 &
ROGUE=$!
PIDS+=($ROGUE)
python - "$N" "$OUT" >"$WORK/overrides.toml" <<'EOF'
import json, sys
mods = ["x-ray", "ct", "fundus", "mri", "ultrasound"][: int(sys.argv[1])]
print(f"setting_options.modalities = '{json.dumps(mods)}'\nflower.num_clients = {sys.argv[1]}")
print(f'sim.rounds = 1\nflower.output_dir = "{sys.argv[2]}"')
EOF
flwr run "$APP" fedpia-tls --stream -c "$WORK/overrides.toml" >"$LOGS/flwr-run.log" 2>&1
for _ in $(seq 1 30); do kill -0 "$ROGUE" 2>/dev/null || break; sleep 1; done
if kill -0 "$ROGUE" 2>/dev/null || ! grep -q "Failed to activate SuperNode" "$LOGS/supernode-unregistered.log"; then
  echo "FAIL: the unregistered SuperNode was not refused (see $LOGS)" >&2; exit 1
fi
test -s "$OUT/history.json" || { echo "FAIL: no $OUT/history.json (see $LOGS)" >&2; exit 1; }
echo "OK: $N registered SuperNodes ran 1 round over TLS; the unregistered one was refused."
echo "history + global adapter in $OUT; logs in $LOGS; keys in $KEYS"
