"""`sr-search bench` and the GPU script run where Ray, Optuna and MLflow cannot be imported (a bare GPU
box): each test runs them in a subprocess whose sitecustomize makes importing those packages fail, in
the spawned worker processes too. This tests our import discipline, not those libraries."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKER = """import sys
for name in ("ray", "optuna", "mlflow"):
    sys.modules[name] = None  # `import ray` now raises ImportError, here and in every child process
"""


@pytest.fixture
def bare(tmp_path):
    """Run `python -m MODULE ARGS` from the repo root with ray, optuna and mlflow unimportable."""
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    return run


def test_the_blocker_blocks(bare):
    done = bare("-c", "import mlflow")
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


def test_bench_train_help_needs_no_ray_optuna_or_mlflow(bare):
    done = bare("-m", "search.cli", "bench", "train", "--help")
    assert done.returncode == 0, done.stderr
    assert "--processes" in done.stdout and "--ablation" in done.stdout


def test_bench_without_a_benchmark_or_with_a_bad_value_is_a_usage_error(bare):
    assert bare("-m", "search.cli", "bench").returncode == 2
    done = bare("-m", "search.cli", "bench", "train", "--channels", "0", "--images", "4", "--rounds", "1")
    assert done.returncode == 2 and "channels" in done.stderr


def test_a_tiny_bench_train_writes_every_figure(bare, tmp_path):
    out = tmp_path / "train.json"
    done = bare("-m", "search.cli", "bench", "train", "--blocks", "1", "--channels", "4", "--images", "16",
                "--rounds", "1", "--device", "cpu", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    for key in ("images_per_s", "speedup", "fraction_of_peak", "fraction_of_gemm", "gemm_tflops"):
        assert result[key] > 0, key
    assert result["machine"]["cpu_cores"] >= 1 and result["versions"]["torch"]
    assert "images/s" in done.stdout and "speedup" in done.stdout


def test_a_tiny_bench_data_writes_its_speedup(bare, tmp_path):
    out = tmp_path / "data.json"
    done = bare("-m", "search.cli", "bench", "data", "--images", "8", "--rounds", "1", "--workers", "0",
                "--device", "cpu", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["speedup"] > 0 and result["images"] == 8 and result["versions"]["python"]


def test_the_gpu_script_smoke_runs_its_sections_and_writes_their_files(bare, tmp_path):
    out = tmp_path / "gpu"
    done = bare("-m", "search.gpu_bench", "--smoke", "--out", str(out),
                "--only", "a_train_b24,e_profile_b24,c_checkpoint,d_packing", timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["sections"]] == ["ok"] * 4, summary["sections"]
    assert json.loads((out / "a_train_b24.json").read_text())["images_per_s"] > 0
    checkpoint = json.loads((out / "c_checkpoint.json").read_text())
    assert checkpoint["background"]["announced"] == [[1, 0], [2, 1], [3, 2]]
    packing = json.loads((out / "d_packing.json").read_text())
    assert [r["processes"] for r in packing["rows"]] == [1, 2]
    assert all(r.get("aggregate_images_per_s", 0) > 0 for r in packing["rows"]), packing


def test_the_estimate_still_measures_a_device_through_bench():
    from search.bench import bench
    result = bench("residual", 0, 4, batch_size=2, seconds=0.05, device="cpu")
    assert result["train_tflops"] > 0 and result["train_images_per_s"] > 0
