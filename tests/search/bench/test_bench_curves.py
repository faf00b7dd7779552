"""`sr-search bench curves`: every config of a grid trained to its end, recorded per epoch, resumable."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _driver import write_study
from search.bench.curves import image_mse, load_curves
from sr_core.models import flops_per_image

ROOT = Path(__file__).resolve().parents[3]
def _curves(tmp_path, out):
    study = write_study(tmp_path, "tiny-curves", blocks=(0, 1), lrs=(2e-3,), epochs=2, patience=1, epoch_samples=8)
    return subprocess.run([sys.executable, "-m", "search.cli", "bench", "curves", "--study", str(study), "--out",
                           str(out), "--processes", "1", "--val-patches", "3"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_every_config_is_recorded_per_epoch_and_a_rerun_trains_only_what_is_missing(tmp_path):
    out = tmp_path / "curves.json.gz"
    # A killed run left one config finished: the rerun keeps it and trains the other.
    kept = {"name": "residual_b0_c4_lr0.002_eta0", "arch": "residual", "blocks": 0, "channels": 4,
            "lr": 0.002, "status": "completed", "flops_per_image": 1, "val_mse": [0.5, 0.4],
            "val_psnr": [3.0, 4.0], "seconds": [9.0, 9.0]}
    (tmp_path / "curves.json.gz.partial").write_text(json.dumps(kept) + "\n{torn")
    done = _curves(tmp_path, out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 configs, 1 already in curves.json.gz.partial, 1 to train" in done.stdout
    curves = load_curves(out)
    assert curves["seed"] == 0 and curves["epochs"] == 2 and curves["val_patches"] == 3
    kept.pop("name")
    assert curves["configs"]["residual_b0_c4_lr0.002_eta0"] == kept
    trained = curves["configs"]["residual_b1_c4_lr0.002_eta0"]
    assert trained["status"] == "completed"  # patience 1 was lifted: early stopping is off while recording
    assert len(trained["val_mse"]) == len(trained["val_psnr"]) == len(trained["seconds"]) == 2
    assert trained["flops_per_image"] == flops_per_image("residual", 1, 4)
    # each epoch's val/mse of each of the 3 val patches, whose mean is the epoch's val/mse
    assert [len(epoch) for epoch in trained["val_mse_images"]] == [3, 3]
    for epoch, mean in enumerate(trained["val_mse"], start=1):
        assert sum(image_mse(trained, epoch)) / 3 == pytest.approx(mean, rel=1e-4)
    assert image_mse(curves["configs"]["residual_b0_c4_lr0.002_eta0"], 1) is None  # recorded before: none
    assert not (tmp_path / "curves.json.gz.partial").exists()
