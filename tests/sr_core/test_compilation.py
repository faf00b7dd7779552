"""Compiled training: which mode "auto" picks (pure rules), and, on CPU with real torch.compile, that a
compiled trial trains the eager net, resumes exactly (in the same process after another shape, and
in a fresh process through the node's compile cache) and reports its compile time once."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sr_core import compilation
from sr_core.compilation import CompileClock, auto_mode, resolve, use_node_compile_cache
from sr_core.fastpaths import FastPaths
from sr_core.gpu_busy import CUDA_GRAPHS_MIN_IMAGES, compute_share, launch_bound
from sr_core.train import TrialConfig, train_trial

CUDA, CPU = torch.device("cuda"), torch.device("cpu")
FAST = TrialConfig(arch="residual", blocks=1, channels=8, lr=1e-3, eta_min=1e-5, epochs=2,
                   batch_size=8, patience=5, seed=1)
STUDY = TrialConfig(arch="residual", blocks=8, channels=64, epochs=75, batch_size=16)  # 75 x 7000 images
WALL_CLOCK = ("epoch_seconds", "images_per_s")


def _metrics_only(history):
    return [{k: v for k, v in h.items() if k not in WALL_CLOCK} for h in history]


class Stopped(BaseException):
    """What a killed process, or Tune's report in a trial it pauses, does to the training thread."""


def _stop_at(epoch: int):
    def on_epoch(report):
        if report["epoch"] == epoch:
            raise Stopped
        return True
    return on_epoch


# -- the rules -------------------------------------------------------------------------------------
def test_the_anchor_config_is_launch_bound_and_wider_or_bigger_batches_are_not():
    assert compute_share("residual", 8, 64, 16) == pytest.approx(0.25, abs=0.01)  # H100: GPU busy 25%
    assert compute_share("residual", 8, 64, 16, cuda_graphs=True) == pytest.approx(0.41, abs=0.01)
    assert compute_share("residual", 8, 64, 64) == 1.0  # 4x the batch filled the idle GPU
    assert all(launch_bound("residual", b, 64, 16) for b in (8, 16, 24))
    assert not launch_bound("residual", 8, 128, 16) and not launch_bound("residual", 24, 612, 16)
    assert not launch_bound("refiner", 8, 64, 16)
    with pytest.raises(ValueError, match="batch_size"):
        compute_share("residual", 8, 64, 0)


def test_auto_is_eager_on_cpu_graphs_for_long_launch_bound_cuda_trials_and_eager_for_big_nets():
    assert auto_mode(CPU, "residual", 8, 64, 16, 525_000) == ""
    assert auto_mode(CUDA, "residual", 8, 64, 16, 525_000) == "reduce-overhead"
    assert auto_mode(CUDA, "residual", 8, 64, 16, CUDA_GRAPHS_MIN_IMAGES - 1) == ""  # the compile would not pay
    assert auto_mode(CUDA, "residual", 24, 612, 16, 525_000) == compilation.AUTO_COMPUTE_BOUND == ""
    assert resolve(FastPaths(), CUDA, STUDY, per_epoch=7000).compile == "reduce-overhead"
    assert resolve(FastPaths(), CPU, STUDY, per_epoch=7000).compile == ""
    assert resolve(FastPaths(compile="regional"), CPU, STUDY, per_epoch=7000).compile == "regional"


def test_auto_is_the_default_and_the_reference_trains_eagerly():
    assert FastPaths().compile == "auto" and FastPaths.reference().compile == ""
    with pytest.raises(ValueError, match="compile"):
        FastPaths(compile="fast")


def test_the_node_cache_folder_goes_into_the_environment_and_an_existing_one_is_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    chosen = use_node_compile_cache(tmp_path / "node")
    assert chosen.is_dir() and os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(chosen)
    assert use_node_compile_cache() == chosen  # what the environment names wins over the default
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert use_node_compile_cache().name == compilation.NODE_CACHE_FOLDER


def test_an_eager_clock_reports_nothing_and_a_compiled_one_reports_once():
    eager = CompileClock()
    eager.start()
    eager.step_done()
    assert eager.report() == {}
    clock = CompileClock(CPU)
    clock.start()
    clock.step_done()
    clock.step_done()
    first = clock.report()
    assert set(first) == {"compile_seconds"} and first["compile_seconds"] >= 0
    assert clock.report() == {}


# -- real compiles on CPU (seconds each) -------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["regional", "default"])
def test_a_compiled_trial_trains_the_eager_net_and_reports_its_compile_time_once(tiny_data, mode):
    """Same seed and data: losses within 1e-4 relative, weights within 1e-5 (inductor may reorder
    float sums; measured here: equal losses, weights within 4e-7)."""
    eager = train_trial(FAST, tiny_data, fast_paths=FastPaths(compile=""))
    reports = []
    compiled = train_trial(FAST, tiny_data, fast_paths=FastPaths(compile=mode),
                           on_epoch=lambda r: reports.append(r) or True)
    for a, b in zip(eager.history, compiled.history):
        for key in ("train/mse", "val/mse", "val/psnr"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), (mode, key)
    for k, v in eager.weights.items():
        torch.testing.assert_close(compiled.weights[k], v, rtol=1e-4, atol=1e-5)
    assert reports[0]["compile_seconds"] > 0 and "compile_seconds" not in reports[1]
    assert all("compile_seconds" not in h for h in compiled.history)  # a report figure, not history


@pytest.mark.slow
def test_a_compiled_trial_killed_then_resumed_after_another_shape_in_the_same_process_is_exact(
        tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    fast, config = FastPaths(compile="regional"), dataclasses.replace(FAST, epochs=4)
    reference = train_trial(config, tiny_data, checkpoint_dir=tmp_path / "ref", fast_paths=fast)
    with pytest.raises(Stopped):  # killed at epoch 2's report
        train_trial(config, tiny_data, checkpoint_dir=tmp_path / "run", on_epoch=_stop_at(2), fast_paths=fast)
    # Ray's actor reuse: the same process trains a net of another shape before the retry.
    other = train_trial(dataclasses.replace(FAST, blocks=2, channels=4), tiny_data, fast_paths=fast)
    assert other.status == "completed"
    reports = []
    resumed = train_trial(config, tiny_data, checkpoint_dir=tmp_path / "run", fast_paths=fast,
                          on_epoch=lambda r: reports.append(r) or True)
    assert [r["epoch"] for r in reports] == [3, 4] and "compile_seconds" in reports[0]
    assert _metrics_only(resumed.history) == _metrics_only(reference.history)
    for k, v in reference.weights.items():
        assert torch.equal(resumed.weights[k], v), k


_CHILD = """
import json, sys, torch
from sr_core.compilation import use_node_compile_cache
from sr_core.data import SRData, SRPairs
from sr_core.train import FastPaths, TrialConfig, train_trial
data_file, config, folder, cache, out = sys.argv[1:]
use_node_compile_cache(cache)
d = torch.load(data_file)
data = SRData(SRPairs(d["tl"], d["th"], d["tn"]), SRPairs(d["vl"], d["vh"], d["vn"]), None, "test")
reports = []
r = train_trial(TrialConfig(**json.loads(config)), data, checkpoint_dir=folder,
                fast_paths=FastPaths(compile="regional"), on_epoch=lambda x: reports.append(x) or True)
torch.save({"history": r.history, "weights": r.weights, "reports": reports}, out)
"""


@pytest.mark.slow
def test_a_compiled_trial_paused_then_resumed_in_a_fresh_process_is_exact(tiny_data, tmp_path, monkeypatch):
    cache = tmp_path / "node-cache"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))
    fast, config = FastPaths(compile="regional"), dataclasses.replace(FAST, epochs=4)
    reference = train_trial(config, tiny_data, fast_paths=fast)
    with pytest.raises(Stopped):  # paused at epoch 2's report: Tune restarts it from the checkpoint
        train_trial(config, tiny_data, checkpoint_dir=tmp_path / "run", on_epoch=_stop_at(2), fast_paths=fast)
    assert list((cache / "fxgraph").iterdir())  # the first compile was written to the node's cache
    t, v = tiny_data.train, tiny_data.val
    torch.save({"tl": t.lr, "th": t.hr, "tn": t.names, "vl": v.lr, "vh": v.hr, "vn": v.names}, tmp_path / "d.pt")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "d.pt"), json.dumps(dataclasses.asdict(config)),
                    str(tmp_path / "run"), str(cache), str(tmp_path / "out.pt")],
                   check=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    child = torch.load(tmp_path / "out.pt", weights_only=False)
    assert [r["epoch"] for r in child["reports"]] == [3, 4] and child["reports"][0]["compile_seconds"] > 0
    assert _metrics_only(child["history"]) == _metrics_only(reference.history)
    for k, v in reference.weights.items():
        assert torch.equal(child["weights"][k], v), k
