"""[study].full_val: the in-loop full/ metrics are `sr-search evaluate`'s figures for the same weights
on the same folder, and a study that names a bad folder, or optimises full/ without one, is refused
through the real CLI with exit 2 and a message naming the field and the file."""
import numpy as np
import pytest
import torch
from _study_toml import study_toml
from PIL import Image
from skimage import data as skdata

from search.apply.benchmark_folders import load_benchmark_folder
from search.apply.evaluate import EvalOptions, trial_rows
from search.cli import main
from search.run.engine import full_val_images
from search.study import parse_study
from sr_core.data import SRData, SRPairs
from sr_core.models import build_model
from sr_core.resize import downscale
from sr_core.train import TrialConfig, train_trial


def write_full_val(folder):
    """Real photos at sizes that are neither multiples of 128 nor of 4, one of them gray."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skdata.chelsea()[:101, :147]).save(folder / "chelsea.png")
    Image.fromarray(skdata.coffee()[50:150, 200:333]).save(folder / "coffee.png")
    Image.fromarray(skdata.camera()[:94, :117]).save(folder / "camera.png")
    return folder


def _tiny_data() -> SRData:
    hr = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1)
    patches = torch.stack([hr[:, r:r + 128, c:c + 128] for r in (0, 128, 256) for c in (0, 128, 256, 384)])
    pairs = lambda x, tag: SRPairs(downscale(x), x, tuple(f"{tag}{i}" for i in range(len(x))))  # noqa: E731
    return SRData(train=pairs(patches[:10], "t"), val=pairs(patches[10:], "v"), test=None, source="test")


def _study(tmp_path, **study):
    return study_toml(study={"name": "fv", "data": "embedded", **study},
                      search={"sampler": "grid", "metric": "full/psnr_y"},
                      space={"arch": "residual", "blocks": [0], "channels": [4], "lr": [1e-3], "eta_min": 1e-5},
                      train={"epochs": 4, "batch_size": 4}, pruner={"kind": "halving", "grace_period": 2},
                      resources={"cpus_per_trial": 1, "gpus_per_trial": 0})


def test_in_loop_full_metrics_equal_evaluate_on_the_same_weights_and_folder(tmp_path):
    folder = write_full_val(tmp_path / "Set3")
    study = parse_study(_study(tmp_path, full_val=str(folder), full_val_every=1), "fv.toml", "fv")
    config = TrialConfig(arch="residual", blocks=1, channels=8, lr=1e-3, eta_min=1e-5, epochs=2, batch_size=5)
    result = train_trial(config, _tiny_data(), full_val=full_val_images(study), objective=("full/psnr_y", "max"))
    model = build_model("residual", 1, 8)
    model.load_state_dict(result.weights)
    [row] = trial_rows(model, {"name": "t"}, [load_benchmark_folder(folder)], EvalOptions(data=()), log=lambda _: None)
    # Same decoded images, same tiling, same 8-bit rounding and metrics: only the forward can differ,
    # by float rounding, which at most flips an 8-bit level of an odd pixel (1e-4 dB on these sizes).
    assert result.best["full/psnr_y"] == pytest.approx(row.mean("psnr_y"), abs=1e-4)
    assert result.best["full/ssim_y"] == pytest.approx(row.mean("ssim_y"), abs=1e-5)
    assert result.best["full/psnr"] == pytest.approx(row.mean("psnr"), abs=1e-4)
    assert [s.image for s in row.scores] == ["camera", "chelsea", "coffee"]
    assert result.best_images["full/psnr_y"] == pytest.approx([s.psnr_y for s in row.scores], abs=1e-4)


def _refused(tmp_path, capsys, text) -> str:
    study = tmp_path / "fv.toml"
    study.write_text(text)
    assert main(["run", "--study", str(study), "--workdir", str(tmp_path / "w"), "--dry-run"]) == 2
    assert not (tmp_path / "w").exists()  # refused before anything is written
    return capsys.readouterr().err


def test_a_missing_folder_is_named_with_its_field(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _study(tmp_path, full_val=str(tmp_path / "Set5")))
    assert "[study].full_val" in err and str(tmp_path / "Set5") in err and "not found" in err


def test_a_folder_without_images_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    err = _refused(tmp_path, capsys, _study(tmp_path, full_val=str(tmp_path / "empty")))
    assert "[study].full_val" in err and "no .png" in err


@pytest.mark.parametrize("name,payload,rule", [
    ("broken.png", b"\x89PNG\r\n\x1a\n not a png", ""),
    ("tiny.png", None, "at least"),
])
def test_a_bad_image_is_named(tmp_path, capsys, name, payload, rule):
    folder = write_full_val(tmp_path / "Set3")
    if payload is None:
        Image.fromarray(np.zeros((16, 40, 3), np.uint8)).save(folder / name)  # under 4 + 11 + 4 rows (20)
    else:
        (folder / name).write_bytes(payload)
    err = _refused(tmp_path, capsys, _study(tmp_path, full_val=str(folder)))
    assert "[study].full_val" in err and str(folder / name) in err and rule in err


def test_a_full_objective_without_a_folder_is_refused(tmp_path, capsys):
    err = _refused(tmp_path, capsys, _study(tmp_path))
    assert "[search].metric" in err and "full/psnr_y" in err and "[study].full_val" in err


def test_a_first_rung_where_nothing_is_scored_is_refused(tmp_path, capsys):
    folder = write_full_val(tmp_path / "Set3")
    err = _refused(tmp_path, capsys, _study(tmp_path, full_val=str(folder), full_val_every=3))
    assert "[pruner].grace_period" in err and "multiple of [study].full_val_every (3)" in err


def test_the_flag_points_a_study_at_another_folder(tmp_path, capsys):
    study = tmp_path / "fv.toml"
    study.write_text(_study(tmp_path, full_val=str(write_full_val(tmp_path / "Set3"))))
    assert main(["run", "--study", str(study), "--workdir", str(tmp_path / "w"), "--dry-run",
                 "--full-val", str(tmp_path / "Set14")]) == 2
    err = capsys.readouterr().err
    assert "[study].full_val" in err and str(tmp_path / "Set14") in err and "not found" in err


def _grid9(**study):
    return parse_study(study_toml(
        study={"name": "g", **study}, search={"sampler": "grid"},
        space={"arch": "residual", "blocks": [1, 2, 3], "channels": [8], "lr": [1e-3, 2e-3, 3e-3], "eta_min": 1e-5},
        train={"epochs": 9, "batch_size": 4}, pruner={"kind": "halving", "grace_period": 3, "reduction_factor": 3},
        final={"epochs": 5}), "g.toml", "g")


def test_the_estimate_counts_every_scoring_of_the_full_val_priced_by_pixels():
    from search.run.cost_model import CostModel, Line
    from search.run.estimate import estimate_study, full_val_scorings
    from search.rungs import schedule_epochs
    plain, every2 = _grid9(), _grid9(full_val="Set5", full_val_every=2)
    # 9 trials, rungs 3 and 9: 6 stop at 3 (epoch 2 scored), 3 run 9 (2, 4, 6, 8 and the last);
    # the final step's 5 epochs score at 2, 4 and 5
    assert full_val_scorings(every2, schedule_epochs(every2)) == 6 * 1 + 3 * 5 + 3
    assert full_val_scorings(plain, schedule_epochs(plain)) == 0
    model = CostModel({"residual": Line(0.01, 0.0)}, {"residual": Line(0.001, 0.0)}, 4, score_pixel_s=1e-7)
    pixels = (3 * 64 * 96, 3 * 256 * 384)  # three 256x384 images
    base = estimate_study(every2, 40, 10, "cpu", 1e10, 2, model)  # no pixels: costs nothing
    priced = estimate_study(every2, 40, 10, "cpu", 1e10, 2, model, pixels)
    one = pixels[0] / 32 ** 2 * 0.001 + pixels[1] * 1e-7  # forward as 32x32 evaluations, metrics per HR pixel
    assert priced.seconds["full_val"] == pytest.approx(24 * one)
    assert (priced.device_hours - base.device_hours) * 3600 == pytest.approx(24 * one)
    assert any(line.startswith("full val     : 24 scorings") for line in priced.lines())
    flops = estimate_study(every2, 40, 10, "cpu", 1e10, 2, full_val_pixels=pixels)  # --tflops: by FLOPs
    assert flops.full_val_flops == pytest.approx(24 * flops.mean_flops_per_image * pixels[0] / 32 ** 2)
