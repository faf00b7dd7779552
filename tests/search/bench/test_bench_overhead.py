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


def test_slots_come_from_running_epochs_and_a_resume_is_the_first_wait_after_a_rung():
    from search.bench.overhead import _concurrency, _resumes
    # two trials: epoch 1 of each on both slots, a rung (both paused) until 10.0, then only "a" resumes at 12.5;
    # "b" ran on at once elsewhere (no pause at its epoch 2)
    epochs = {"a": [(1, 0.0, 4.0), (2, 12.5, 16.0)], "b": [(1, 0.0, 10.0), (2, 14.0, 18.0), (3, 18.0, 20.0)]}
    intervals = [(start, end) for rows in epochs.values() for _, start, end in rows]
    assert _concurrency(intervals) == 2  # a paused trial holds no slot: never 3 at once
    assert _resumes(epochs) == [2.5]  # after the rung at epoch 1 (last end 10.0), the first resume at 12.5


def test_trials_started_side_by_side_hold_a_slot_each_while_they_start():
    """CI's case: two trials opened at 0 whose 1-second epochs never overlap (one starts slower). Counting
    slots from epochs alone gave one slot for two 5-second starts: an overhead of 150% of the slot time."""
    from search.bench.overhead import overhead_figures
    figures = overhead_figures({"a": 0.0, "b": 0.0}, {"a": [(1, 5.0, 6.0), (2, 6.0, 7.0)],
                                                      "b": [(1, 7.0, 8.0), (2, 8.0, 9.0)]})
    assert figures["concurrency"] == 2 and figures["wall_s"] == 9.0 and figures["compute_s"] == 4.0
    assert figures["overhead_s_per_trial"] == 6.0  # starts of 5 s and 7 s
    assert figures["overhead_fraction"] == 12.0 / 18.0
