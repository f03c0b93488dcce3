#!/usr/bin/env bash
# Build a fresh virtual environment at one end of pyproject.toml's dependency ranges and run tests.
#
#   scripts/check_ranges.sh lowest|highest|pinned PYTHON VENV_DIR [pytest args...]
#
# lowest : every direct dependency (and extra) at the LOWEST version its range allows
# highest: every dependency at the newest version the registry offers inside the ranges
# pinned : the exact versions of constraints.txt (what `make` installs)
# Uses uv (installed with flwr) and PyPI only: torch comes from PyPI there, i.e. a CUDA build of
# several GB (it runs on the CPU). Not part of `make test`: run it when you change a range.
set -euo pipefail
mode=$1 python=$2 venv=$3
shift 3
cd "$(dirname "$0")/.."
UV=${UV:-uv}
case $mode in
  lowest)  # every ">=X" of pyproject.toml (dependencies and extras) pinned to exactly X
    lower=$(mktemp)
    "$python" - > "$lower" <<'PY'
import re, tomllib
proj = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = proj["dependencies"] + [r for rs in proj["optional-dependencies"].values() for r in rs]
for r in reqs:
    m = re.match(r"([A-Za-z0-9_.\-]+)(\[[^]]*\])?\s*>=\s*([^,\s]+)", r)
    if m:
        print(f"{m[1]}=={m[3]}")
PY
    res=(--resolution lowest-direct -c "$lower") ;;
  highest) res=(--resolution highest) ;;
  pinned) res=(-c constraints.txt) ;;
  *) echo "mode must be lowest|highest|pinned, got $mode" >&2; exit 2 ;;
esac
"$UV" venv -q -p "$python" "$venv"
"$UV" pip install -q -p "$venv/bin/python" "${res[@]}" -e ".[flower,hf,dev,tensorboard]"
"$UV" pip install -q -p "$venv/bin/python" --no-deps -r requirements-nodeps.txt
"$UV" pip freeze -p "$venv/bin/python" > "$venv/freeze.txt"
"$venv/bin/python" -c 'import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__)'
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
PYTHONPATH=$PWD/src "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
