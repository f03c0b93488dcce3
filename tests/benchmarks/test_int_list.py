"""``int_list`` in benchmarks/_docs.py: the comma-separated integer options of the benchmark scripts give a
usage error (exit 2, naming the value) instead of a traceback."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_int_list_parses_and_rejects(load_benchmark):
    int_list = load_benchmark("_docs").int_list
    assert int_list("0,1,2") == [0, 1, 2] and int_list("5") == [5] and int_list("3,") == [3]
    for bad in ("1,x", "", ",", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            int_list(bad)


@pytest.mark.parametrize("script,option", [("bench_accuracy.py", "--seeds"), ("bench_cost.py", "--ks")])
def test_scripts_give_a_usage_error(script, option):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), option, "0,two"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "expected comma-separated integers, got '0,two'" in proc.stderr
    assert "Traceback" not in proc.stderr
