"""The crops through the one writer and back through the report's reader: two real tiny models'
predictions logged into a real sqlite MLflow store by search.tracking, read by reports."""
import dataclasses
import io

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from reports import load_runs
from reports.comparison import load_comparison
from search import tracking
from sr_core.crops import bicubic_crops, choose_crops, hr_crops, render_crops
from sr_core.data import SRPairs
from sr_core.models import build_model
from sr_core.patches import patch_name
from sr_core.resize import downscale
from sr_core.trial_config import TrialConfig


class _Study:
    name, text = "crops", "[study]\nname = 'crops'\n"

    @staticmethod
    def flat_params():
        return {"pruner.grace_period": 1}


def _val() -> SRPairs:
    """Six textured patches of three photos (stripes of several periods under noise)."""
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(128).view(1, 128, 1)
    hr, names = [], []
    for k, (photo, col) in enumerate([(p, c) for p in ("ant", "bee", "cat") for c in (0, 256)]):
        stripes = 60 + 120 * ((y // (3 + k)) % 2) + 30 * torch.rand(3, 128, 128, generator=gen)
        hr.append(stripes.clamp(0, 255).to(torch.uint8))
        names.append(patch_name(photo, 0, col))
    hr = torch.stack(hr)
    return SRPairs(downscale(hr), hr, tuple(names))


def _perturbed(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("residual", 1, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.03 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    root = tmp_path_factory.mktemp("crops")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    experiment = tracking.ensure_experiment(client, root / "artifacts")
    study_run = tracking.start_study_run(client, experiment, _Study, {"bicubic/val_psnr": 20.0}, {})
    crops = choose_crops(_val(), count=4)
    tracking.log_study_crops(client, study_run, crops)
    models, runs, scores = [_perturbed(1), _perturbed(2)], [], []
    for i, model in enumerate(models):
        config = dataclasses.asdict(TrialConfig(blocks=1, channels=8, lr=1e-3 * (i + 1), epochs=2))
        run_id = tracking.create_trial_run(client, experiment, study_run, "crops", f"t{i}", config, tags={})
        scores.append(tracking.log_trial_crops(client, run_id, model, crops, step=2))
        tracking.log_values(client, run_id, {"best/val_mse": 0.01 + 0.001 * i, "best/val_psnr": 20.0 - i,
                                             "best/epoch": 2, "epochs_run": 2})
        tracking.set_status(client, run_id, "completed", "")
        runs.append(run_id)
    tracking.set_status(client, study_run, "completed")
    return uri, client, crops, models, runs, scores


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_each_trials_predictions_come_back_pixel_for_pixel_with_their_psnrs(logged):
    uri, _, crops, models, runs, scores = logged
    comparison = load_comparison(load_runs(uri, ["crops"]))
    assert [t.run_id for t in comparison.trials] == runs  # both shown: best val/mse first
    assert sorted(c.name for c in comparison.crops) == sorted(crops.names)
    for row in comparison.crops:
        at = crops.names.index(row.name)
        assert np.array_equal(_decode(row.hr_png), hr_crops(crops)[at])
        assert np.array_equal(_decode(row.bicubic_png), bicubic_crops(crops)[at])
        for model, run_id, score in zip(models, runs, scores):
            assert np.array_equal(_decode(row.sr_png[run_id]), render_crops(model, crops)[at])
            assert row.psnr[run_id] == pytest.approx(score[at]["psnr"])
            assert row.psnr_y[run_id] == pytest.approx(score[at]["psnr_y"])
    assert any(row.psnr[runs[0]] != row.psnr[runs[1]] for row in comparison.crops)  # the models differ


def test_mlflow_holds_one_path_per_crop_in_every_trial_and_the_image_keys_of_its_chart_view(logged):
    _, client, crops, _, runs, _ = logged
    for run_id in runs:
        paths = {a.path for a in client.list_artifacts(run_id, "crops")}
        assert paths == {f"crops/{key}.png" for key in crops.keys}
        images = [a.path for a in client.list_artifacts(run_id, "images")]
        assert len(images) == 2 * len(crops)  # each key: the PNG and MLflow's compressed preview
        assert all(f"crops~{key}+step+2+" in " ".join(images) for key in crops.keys)
        assert client.get_run(run_id).data.tags["mlflow.loggedImages"] == "True"
        history = client.get_metric_history(run_id, f"crops/{crops.keys[0]}/psnr")
        assert [m.step for m in history] == [2]
