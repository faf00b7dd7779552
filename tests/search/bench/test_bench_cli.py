"""`sr-search bench train` and `bench data` run where Ray, Optuna and MLflow cannot be imported (a bare
GPU box), and print figures that are consistent with each other."""
import json
import statistics

import pytest

pytestmark = pytest.mark.slow  # benchmarks that train in subprocesses



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
    ours = result["ours"]
    # The figures follow from one another: rates from FLOPs, fractions from rates, ratios from rounds.
    assert ours["tflops"] == pytest.approx(result["train_gflop_per_image"] * 1e9 * ours["images_per_s"] / 1e12)
    assert result["fraction_of_gemm"] == pytest.approx(ours["tflops"] / result["gemm_tflops"])
    assert result["fraction_of_peak"] == result["fraction_of_gemm"]  # a CPU has no data-sheet peak here
    assert result["speedup"] == pytest.approx(statistics.median(
        r / p for r, p in zip(ours["images_per_s_each"], ours["plain_images_per_s_each"])))
    assert result["gemm_tflops"] == max(result["gemm_tflops_each"]) and len(ours["images_per_s_each"]) == 1
    assert result["machine"]["cpu_cores"] >= 1 and result["versions"]["torch"]
    assert "images/s" in done.stdout and "speedup" in done.stdout


def test_a_tiny_bench_data_writes_its_speedup(bare, tmp_path):
    out = tmp_path / "data.json"
    done = bare("-m", "search.cli", "bench", "data", "--images", "8", "--rounds", "1", "--workers", "0",
                "--device", "cpu", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["images"] == 8 and result["versions"]["python"]
    assert result["speedup"] == pytest.approx(result["pil_epoch_s"] / result["ours_epoch_s"])  # one round
    assert result["ours_images_per_s"] == pytest.approx(8 / result["ours_epoch_s"])
    assert result["crops_vs_fixed"] == pytest.approx(result["ours_epoch_s"] / result["crops_epoch_s"])
    assert result["crops_images_per_s"] == pytest.approx(8 / result["crops_epoch_s"])
    assert "random crops at" in done.stdout


def test_a_tiny_bench_crops_trains_both_ways_the_same_steps_and_gives_the_interval(bare, tmp_path):
    from _photos import write_photos
    photos = write_photos(tmp_path / "photos", names=("astronaut", "coffee", "rocket", "chelsea", "camera"))
    out = tmp_path / "crops.json"
    done = bare("-m", "search.cli", "bench", "crops", "--data", str(photos), "--epochs", "1", "--blocks", "0",
                "--channels", "4", "--device", "cpu", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["train_photos"] == 4 and result["images_per_epoch"] == 16 and result["val_images"] == 4
    assert [r["train"] for r in result["rows"]] == ["fixed", "random"]
    assert all(r["status"] == "completed" and r["best_epoch"] == 1 for r in result["rows"])
    verdict = result["random_vs_fixed_db"]
    assert verdict["low"] <= verdict["value"] <= verdict["high"] and verdict["images"] == 4
    assert "random crops against fixed patches on the val images" in done.stdout
