"""`sr-search bench overhead` through the real engine (Ray + Optuna + MLflow)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _driver import ray_tmp

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_bench_overhead_writes_its_figures(tmp_path):
    """Two tiny trials through the real engine (run where no ./sr-runs exists: no demo figure)."""
    out = tmp_path / "overhead.json"
    done = subprocess.run([sys.executable, "-m", "search.cli", "bench", "overhead", "--trials", "2", "--epochs", "2",
                           "--json", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": ray_tmp(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    figures = result["tiny"]
    assert "demo" not in result and figures["trials"] == 2
    assert 0 < figures["compute_s"] < figures["wall_s"] * figures["concurrency"]
    assert figures["overhead_s_per_trial"] > 0 and 0 < figures["overhead_fraction"] < 1
    assert "overhead s/trial" in done.stdout
