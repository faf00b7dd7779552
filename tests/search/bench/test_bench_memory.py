"""bench memory, the packed rung and the compile-and-memory GPU script, on CPU where Ray, Optuna and
MLflow cannot be imported (tests/search/bench/_bare.py)."""
import dataclasses
import json

import pytest

from search.bench.packing import RungJob, _schedule, plan


def test_bench_memory_without_cuda_predicts_only_and_says_so(bare, tmp_path):
    out = tmp_path / "memory.json"
    done = bare("-m", "search.bench.memory", "--configs", "1x8,2x16", "--batch-sizes", "2,4",
                "--train-images", "8", "--val-images", "4", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    rows = result["rows"]
    configs = [(r["blocks"], r["channels"], r["batch_size"]) for r in rows]
    assert configs == [(1, 8, 2), (1, 8, 4), (2, 16, 2), (2, 16, 4)]
    assert all(r["predicted_gib"] > 0 and r["measured_gib"] is None for r in rows)
    assert rows[3]["predicted_gib"] > rows[0]["predicted_gib"]
    assert "no CUDA" in result["note"] and result["calibration"]["judged"] == 0
    assert result["versions"]["torch"]


def test_bench_memory_names_a_malformed_config(bare):
    done = bare("-m", "search.bench.memory", "--configs", "8-64")
    assert done.returncode == 2 and "--configs" in done.stderr


def test_the_rung_scheduler_never_overfills_the_gpu_and_serves_trials_in_order():
    jobs = [RungJob(8, 64, 1e-4, 0.5), RungJob(8, 64, 5e-5, 0.25), RungJob(24, 612, 1e-4, 1.0),
            RungJob(8, 64, 3e-5, 0.25), RungJob(16, 64, 1e-4, 0.5)]
    running, started = [], []

    class Inbox:
        def __init__(self, worker):
            self.worker = worker

        def put(self, job):
            assert self.worker not in [w for w, _ in running]  # only idle workers get a trial
            running.append((self.worker, job))
            started.append(job)
            assert sum(j.fraction for _, j in running) <= 1.0

    def finish_oldest():
        worker, job = running.pop(0)
        return {"worker": worker, "job": dataclasses.asdict(job)}

    rows = _schedule(jobs, [Inbox(w) for w in range(4)], finish_oldest)
    assert started == jobs  # first come, first served: the whole-GPU trial waits, nothing overtakes it
    assert [r["job"] for r in rows] == [dataclasses.asdict(j) for j in jobs]


def test_the_rung_plan_packs_the_small_launch_bound_config_and_not_the_wide_one():
    small, wide = plan([(8, 64, 1e-4), (8, 128, 1e-4)], device_bytes=80 * 2 ** 30, train_images=2048,
                       val_images=64, epoch_images=1024)
    assert small.fraction == 0.5  # CUDA graphs ("auto" for 75 epochs): GPU share 0.41, two fill it
    assert wide.fraction == 1.0


@pytest.mark.slow
def test_the_compile_and_memory_gpu_script_smoke_runs_every_section(bare, tmp_path):
    out = tmp_path / "gpu"
    done = bare("-m", "search.bench.gpu_targets", "--smoke", "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["section"], s["status"]) for s in summary["sections"]] == [
        ("b24_compiled", "ok"), ("b8_graphs", "ok"), ("memory", "ok"), ("packed_rung", "ok")], summary
    big = json.loads((out / "b24_compiled.json").read_text())
    eager, regional = big["rows"]
    assert eager["compile_seconds"] == 0 and regional["compile_seconds"] > 0
    assert regional["speedup_vs_eager"] > 0 and big["target_met"] in (True, False) and "table" in big["profile"]
    small = json.loads((out / "b8_graphs.json").read_text())
    assert small["rows"][2]["variant"].endswith("(warm compile cache)")
    assert small["resume"]["status"] == "completed" and small["resume"]["resumed_epochs"] == [2]
    assert small["resume"]["exact"] and small["resume"]["compile_seconds"] > 0  # on CPU: bit for bit
    assert small["rows"][1]["val_mse_vs_eager"] < 1e-4
    assert small["auto_study_trial"]["resolved"] == "" and small["auto_study_trial"]["status"] == "pruned"
    memory = json.loads((out / "memory.json").read_text())
    rows = memory["rows"] + memory["eval_256"]["rows"]
    assert all(r["predicted_gib"] > 0 and r["measured_gib"] is None for r in rows)
    rung = json.loads((out / "packed_rung.json").read_text())
    assert rung["packed"]["statuses"] == ["pruned"] and rung["packed"]["oom"] == 0 and rung["speedup"] > 0
