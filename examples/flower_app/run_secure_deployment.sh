#!/usr/bin/env bash
# Local deployment with TLS + SuperNode authentication, exactly as docs/flower.md describes it:
# keys, flwr connection and the server operator's config (FEDPIA_SERVER_CONFIG) from
# make_deployment.py; 1 SuperLink (--enable-supernode-auth); N registered SuperNodes, each with
# its own (demo) site data; 1 UNREGISTERED SuperNode that must be refused; 1 round of this app
# submitted with `python -m fedpia.flower.submit` (exit code = run status). Every process
# started here is stopped by its PID at exit. Usage (from the repo root, fedpia + flwr in $VENV):
#   bash examples/flower_app/run_secure_deployment.sh [num_nodes=2] [work_dir=$(mktemp -d)]
set -euo pipefail
N=${1:-2}
WORK=${2:-$(mktemp -d /tmp/fedpia-secure.XXXX)}
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd)
APP=$(cd "$(dirname "$0")" && pwd)
VENV=${VENV:-$(cd "$APP/../.." && pwd)/.venv}
export PATH="$VENV/bin:$PATH"
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
KEYS=$WORK/keys LOGS=$WORK/logs
mkdir -p "$LOGS"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python -c "from fedpia.deploy.processes import free_port; print(free_port())"; }
wait_port() { for _ in $(seq 1 120); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 1; done
  echo "nothing listens on port $1 (see $LOGS)" >&2; return 1; }

PORT=$(free_port)
NODES=$(seq -s, -f "hospital-%g" 0 $((N - 1)))
python "$APP/make_deployment.py" "$KEYS" --nodes "$NODES,unregistered" --address "127.0.0.1:$PORT" >"$LOGS/commands.sh"
# the operator's config lists only the hospitals (make_deployment.py listed every node it keyed)
python - "$KEYS" "$NODES" >"$KEYS/server.toml" <<'PY'
import sys
from fedpia.deploy.operator import operator_toml
keys, nodes = sys.argv[1], sys.argv[2].split(",")
print(operator_toml(f"{keys}/runs", {n: f"{keys}/nodes/{n}/supernode.pub" for n in nodes}), end="")
PY
export FLWR_HOME=$WORK/flwr-home
mkdir -p "$FLWR_HOME" && cp "$KEYS/flwr-config.toml" "$FLWR_HOME/config.toml"

# setsid: every process leads its own process group, stopped as a whole by cleanup
FEDPIA_SERVER_CONFIG=$KEYS/server.toml setsid flower-superlink --host 127.0.0.1 --port "$PORT" \
  --database "$WORK/state.db" --ssl-ca-certfile "$KEYS/ca.crt" --ssl-certfile "$KEYS/server.pem" \
  --ssl-keyfile "$KEYS/server.key" --enable-supernode-auth --disable-runtime-dependency-installation \
  >"$LOGS/superlink.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT"
for ((k = 0; k < N; k++)); do  # the operator registers the hospitals' public keys
  flwr supernode register "$KEYS/nodes/hospital-$k/supernode.pub" fedpia-tls --name "hospital-$k"
done
MODS=(x-ray ct fundus mri ultrasound)
for node in $(echo "$NODES" | tr , ' ') unregistered; do
  k=${node#hospital-}; [[ $node == unregistered ]] && k=0
  setsid flower-supernode --superlink "127.0.0.1:$PORT" --root-certificates "$KEYS/ca.crt" \
    --auth-supernode-private-key "$KEYS/nodes/$node/supernode.key" --port "$(free_port)" \
    --node-config "data-format=\"synthetic:${MODS[$((k % 5))]}\" data-n-train=32" >"$LOGS/$node.log" 2>&1 &
  PIDS+=($!)
  [[ $node == unregistered ]] && ROGUE=$!
done
python -m fedpia.flower.submit "$APP" fedpia-tls -c "sim.rounds=1" >"$LOGS/submit.log" 2>&1 \
  || { echo "FAIL: the run failed (see $LOGS/submit.log)" >&2; exit 1; }
for _ in $(seq 1 60); do kill -0 "$ROGUE" 2>/dev/null || break; sleep 1; done
if kill -0 "$ROGUE" 2>/dev/null || ! grep -q "Failed to activate SuperNode" "$LOGS/unregistered.log"; then
  echo "FAIL: the unregistered SuperNode was not refused (see $LOGS)" >&2; exit 1
fi
RESULTS=$(ls "$KEYS"/runs/*/results.json)
echo "OK: $N registered SuperNodes ran 1 round over TLS; the unregistered one was refused."
echo "results: $RESULTS; logs in $LOGS; keys in $KEYS"
