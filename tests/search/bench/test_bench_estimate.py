"""`sr-search bench estimate` on a real study: the estimate it printed before it ran (kept on its study
run) against what its trials spent, per run and in total."""
import json

import pytest

from _driver import child_env, run_cli, write_study


@pytest.mark.slow
def test_bench_estimate_sets_each_run_and_the_total_against_what_the_study_spent(tmp_path):
    study = write_study(tmp_path, "est", blocks=(0, 1), lrs=(1e-3, 2e-3), epochs=2, concurrent=2)
    workdir = tmp_path / "w"
    env = child_env(tmp_path)
    rc, out = run_cli(["run", "--study", str(study), "--workdir", str(workdir), "--no-report"], env)
    assert rc == 0, out[-3000:]
    assert "cost model   : real steps of 2 shapes timed on the trials' device" in out
    rc, out = run_cli(["bench", "estimate", "--study", "est", "--workdir", str(workdir),
                       "--json", str(tmp_path / "e.json")], env)
    assert rc == 0, out[-3000:]
    result = json.loads((tmp_path / "e.json").read_text())
    rows = result["rows"]
    assert sorted(r["run"] for r in rows) == sorted(f"residual_b{b}_c4_lr{lr:g}_eta0" for b in (0, 1)
                                                    for lr in (1e-3, 2e-3))
    assert all(r["part"] == "search" and r["epochs"] == 2 and r["predicted_s"] > 0 and r["actual_s"] > 0
               for r in rows)
    total = result["total"]
    assert total["device_hours_actual"] == pytest.approx(sum(r["actual_s"] for r in rows) / 3600)
    assert total["device_hours_estimate"] > 0 and total["wall_hours_actual"] > 0 and total["probe_seconds"] > 0
    assert "device-hours:" in out and "x actual" in out
    # a study that keeps no estimate (run with --tflops) says so and exits 2
    rc, out = run_cli(["run", "--study", str(study), "--workdir", str(tmp_path / "w2"), "--no-report",
                       "--tflops", "1"], env)
    assert rc == 0, out[-3000:]
    rc, out = run_cli(["bench", "estimate", "--study", "est", "--workdir", str(tmp_path / "w2")], env)
    assert rc == 2 and "keeps no estimate.json" in out
