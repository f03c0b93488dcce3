#!/usr/bin/env bash
# Local (insecure) deployment test: 1 SuperLink + N SuperNodes (one per client) + `flwr run`.
# Every process started here is stopped by its PID at exit. Usage (from the repo root):
#   bash examples/flower_app/run_local_deployment.sh [num_clients=3] [output_dir=/tmp/fedpia-flower-out]
set -euo pipefail
N=${1:-3}
OUT=${2:-/tmp/fedpia-flower-out}
APP=$(cd "$(dirname "$0")" && pwd)
VENV=${VENV:-$(cd "$APP/../.." && pwd)/.venv}
export PATH="$VENV/bin:$PATH"
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
export FLWR_HOME=${FLWR_HOME:-$(mktemp -d /tmp/fedpia-flwr-home.XXXX)}
cp "$APP/flower_config.toml" "$FLWR_HOME/config.toml"
LOGS=$(mktemp -d /tmp/fedpia-flower-logs.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
wait_port() {  # wait until something listens on 127.0.0.1:$1 (SuperLink start-up takes seconds)
  for _ in $(seq 1 60); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 1; done
  echo "nothing listens on port $1 (see $LOGS)" >&2; return 1
}
trap cleanup EXIT

flower-superlink --insecure --port 8000 --database "$FLWR_HOME/state.db" >"$LOGS/superlink.log" 2>&1 &
PIDS+=($!)
wait_port 8000  # Flower 1.42: one HTTP API (Control + Fleet + Runtime) on --host/--port
for ((k = 0; k < N; k++)); do
  flower-supernode --insecure --superlink 127.0.0.1:8000 --port $((9094 + k)) \
    --node-config "partition-id=$k num-partitions=$N" >"$LOGS/supernode-$k.log" 2>&1 &
  PIDS+=($!)
done
sleep 3
flwr run "$APP" deployment-insecure --stream -c "flower.num_clients=$N flower.output_dir='$OUT'"
echo "history + global adapter in $OUT; logs in $LOGS"
