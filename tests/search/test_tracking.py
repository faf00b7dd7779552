"""search.tracking's pure parts: the best of a study's trial rows, and run names from a config mapping."""
import math

from search.tracking import best_of, run_name


def _row(name, status, mse, psnr):
    return {"name": name, "status": status, "best/val_mse": mse, "best/val_psnr": psnr}


def test_best_of_follows_the_studys_metric_and_direction():
    rows = [_row("a", "completed", 0.010, 31.0), _row("b", "early_stopped", 0.008, 30.5),
            _row("c", "pruned", 0.001, 40.0), _row("d", "failed", math.nan, math.nan)]
    assert best_of(rows)["name"] == "b"  # the default objective: val/mse, min
    assert best_of(rows, "val/psnr", "max")["name"] == "a"  # another logged metric, with its direction
    assert best_of([rows[2], rows[3]]) is None


def test_run_name_from_a_tune_config_mapping():
    config = {"arch": "residual", "blocks": 24, "channels": 612, "lr": 1e-4, "eta_min": 1e-7, "_cpus": 4}
    assert run_name(config) == "residual_b24_c612_lr0.0001_eta1e-07"
