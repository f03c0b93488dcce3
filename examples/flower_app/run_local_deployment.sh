#!/usr/bin/env bash
# Local INSECURE deployment for debugging only (no TLS, no node authentication, nodes name their
# own partition of the app's synthetic setting): 1 SuperLink + N SuperNodes + one run. Every
# process started here is stopped by its PID at exit. Usage (from the repo root):
#   bash examples/flower_app/run_local_deployment.sh [num_clients=3] [work_dir=$(mktemp -d)]
# For hospitals use run_secure_deployment.sh / docs/flower.md (TLS, node auth, site data).
set -euo pipefail
N=${1:-3}
WORK=${2:-$(mktemp -d /tmp/fedpia-local.XXXX)}
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd)
APP=$(cd "$(dirname "$0")" && pwd)
VENV=${VENV:-$(cd "$APP/../.." && pwd)/.venv}
export PATH="$VENV/bin:$PATH"
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
export FLWR_HOME=$WORK/flwr-home LOGS=$WORK/logs
mkdir -p "$FLWR_HOME" "$LOGS"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python -c "from fedpia.deploy.processes import free_port; print(free_port())"; }
wait_port() { for _ in $(seq 1 120); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 1; done
  echo "nothing listens on port $1 (see $LOGS)" >&2; return 1; }
PORT=$(free_port)
printf '[superlink]\ndefault = "insecure"\n\n[superlink.insecure]\naddress = "127.0.0.1:%s"\ninsecure = true\n' \
  "$PORT" >"$FLWR_HOME/config.toml"
printf 'output_dir = "%s/runs"\n' "$WORK" >"$WORK/server.toml"  # no [[clients]]: partition-ids

FEDPIA_SERVER_CONFIG=$WORK/server.toml setsid flower-superlink --insecure --port "$PORT" \
  --database "$WORK/state.db" >"$LOGS/superlink.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT"
for ((k = 0; k < N; k++)); do
  setsid flower-supernode --insecure --superlink "127.0.0.1:$PORT" --port "$(free_port)" \
    --node-config "partition-id=$k num-partitions=$N" >"$LOGS/supernode-$k.log" 2>&1 &
  PIDS+=($!)
done
MODS='["x-ray", "ct", "fundus", "mri", "ultrasound"]'
python -m fedpia.flower.submit "$APP" insecure -c "flower.num_clients=$N" \
  -c "setting_options.modalities='$(python -c "import json; print(json.dumps(json.loads('$MODS')[:$N]))")'"
echo "results in $WORK/runs/<run id>/; logs in $LOGS"
