"""`sr-search evaluate` end to end, as a user runs it: a tiny study trained through the CLI (real Ray,
Optuna and MLflow), then evaluated through the CLI on the shipped benchmark folder (an odd-sized
photo, a gray one, one upscaled in tiles), and the figures read back from MLflow and recomputed here
with scikit-image's metrics on papers' conventions."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from _driver import child_env, client, run_cli, runs, write_study
from reports import load_runs
from reports.evaluation import load_evaluations
from sr_core.benchmark_photos import write_benchmark
from sr_core.infer import load_model, upscale
from sr_core.matlab_resize import matlab_downscale, matlab_upscale

pytestmark = pytest.mark.slow  # a real study through Ray, then two evaluations

STUDY = "evalstudy"
SIZES = {"camera": (512, 512), "chelsea": (300, 448), "coffee_crop": (396, 596), "retina": (1408, 1408)}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    env = child_env(root)
    workdir = root / "w"
    study = write_study(root, STUDY, blocks=(0, 1), lrs=(1e-3, 2e-3), epochs=2)
    ran = run_cli(["run", "--study", str(study), "--workdir", str(workdir), "--no-report"], env)
    bench = root / "bench"
    write_benchmark(bench)
    done = run_cli(["evaluate", "--study", STUDY, "--trials", "top:2", "--data", str(bench), "--self-ensemble",
                    "--tile", "128", "--workdir", str(workdir)], env)
    trials = sorted((r for r in runs(workdir) if r.data.tags["status"] in ("completed", "early_stopped")),
                    key=lambda r: (r.data.metrics["best/val_mse"], r.info.start_time))
    return {"ran": ran, "done": done, "workdir": workdir, "bench": bench, "env": env, "top": trials[:2],
            "study_run": runs(workdir, "study")[0]}


def _table(out: str) -> list[list[str]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("------")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("PSNR-Y, SSIM-Y:"))
    return [line.split() for line in lines[start:end]]


def _metrics(workdir, run_id):
    return client(workdir).get_run(run_id).data


def test_the_printed_table_is_what_mlflow_holds_bicubic_first_then_the_two_best_and_their_plus(evaluated):
    (code, out), workdir = evaluated["done"], evaluated["workdir"]
    assert evaluated["ran"][0] == 0, evaluated["ran"][1][-3000:]
    assert code == 0, out[-3000:]
    best, second = (r.info.run_name for r in evaluated["top"])
    table = _table(out)
    assert [row[1] for row in table] == ["bicubic", best, best + "+", second, second + "+"]
    runs_of = {"bicubic": evaluated["study_run"].info.run_id, **{r.info.run_name: r.info.run_id for r in evaluated["top"]}}
    for folder, label, images, psnr_y, ssim_y, psnr, *_ in table:
        name, plus = label.removesuffix("+"), label.endswith("+")
        prefix = f"eval/{folder}/" + ("bicubic/" if name == "bicubic" else "self_ensemble/" if plus else "")
        logged = _metrics(workdir, runs_of[name]).metrics
        assert (folder, images) == ("bench", "4")
        assert (f"{logged[prefix + 'psnr_y']:.2f}", f"{logged[prefix + 'ssim_y']:.4f}",
                f"{logged[prefix + 'psnr']:.2f}") == (psnr_y, ssim_y, psnr)
    for run_id in runs_of.values():
        tags = _metrics(workdir, run_id).tags
        assert (tags["eval/bench/lr_kernel"], tags["eval/bench/images"]) == ("matlab", "4")
    others = [r for r in runs(workdir) if r.info.run_id not in runs_of.values()]
    assert others and all(not any(k.startswith("eval/") for k in r.data.metrics) for r in others)


def _paper_scores(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float, float]:
    """scikit-image on papers' conventions: Y of rgb2ycbcr, 4 px cropped, data range 255; RGB PSNR uncropped."""
    y_sr, y_hr = (rgb2ycbcr(x)[4:-4, 4:-4, 0] for x in (sr, hr))
    return (peak_signal_noise_ratio(y_hr, y_sr, data_range=255),
            structural_similarity(y_hr, y_sr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=255), peak_signal_noise_ratio(hr, sr, data_range=255))


def _hr_and_lr(bench, name):
    hr = np.asarray(Image.open(bench / f"{name}.png").convert("RGB"))  # camera: gray made RGB
    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    return hr, matlab_downscale(torch.from_numpy(hr).permute(2, 0, 1).contiguous())


def _mean_scores(evaluated, upscaled) -> np.ndarray:
    """Per image with `upscaled(lr) -> uint8 HxWx3`, then the mean of each over the images."""
    scores = [_paper_scores(upscaled(lr), hr) for hr, lr in (_hr_and_lr(evaluated["bench"], n) for n in SIZES)]
    return np.mean(scores, axis=0)


def test_bicubic_is_matlabs_upscale_scored_as_scikit_image_scores_it(evaluated):
    logged = _metrics(evaluated["workdir"], evaluated["study_run"].info.run_id).metrics
    ours = [logged[f"eval/bench/bicubic/{m}"] for m in ("psnr_y", "ssim_y", "psnr")]
    theirs = _mean_scores(evaluated, lambda lr: matlab_upscale(lr).permute(1, 2, 0).numpy())
    assert ours == pytest.approx(list(theirs), abs=1e-6)


def test_the_best_trial_scores_as_its_untiled_forward_does(evaluated, tmp_path):
    workdir, best = evaluated["workdir"], evaluated["top"][0]
    model = load_model(client(workdir).download_artifacts(best.info.run_id, "best.pt", str(tmp_path)))
    logged = _metrics(workdir, best.info.run_id).metrics
    for prefix, ensemble in (("eval/bench/", False), ("eval/bench/self_ensemble/", True)):
        def untiled(lr):
            sr = upscale(model, lr[None], self_ensemble=ensemble)[0]  # the batch path: one piece
            return (sr * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        theirs = _mean_scores(evaluated, untiled)
        # Tiling is exact up to float rounding, which may move a pixel across a rounding edge.
        assert [logged[prefix + m] for m in ("psnr_y", "ssim_y", "psnr")] == pytest.approx(list(theirs), abs=1e-3)


def test_progress_has_a_line_per_image_and_the_big_one_went_in_tiles(evaluated):
    _, out = evaluated["done"]
    best = evaluated["top"][0].info.run_name
    for i, (name, (h, w)) in enumerate(SIZES.items(), start=1):
        assert re.search(rf"\[bench {i}/4\] bicubic: {name} {h}x{w}, PSNR-Y [\d.]+ dB", out)
    assert re.search(rf"\] {re.escape(best)}\+: retina 1408x1408, PSNR-Y [\d.]+ dB, SSIM-Y [\d.]+ \(9 tiles of 128 LR px\)", out)
    assert re.search(rf"\] {re.escape(best)}: camera 512x512, PSNR-Y [\d.]+ dB, SSIM-Y [\d.]+\n", out)  # one tile


def test_every_image_is_kept_and_the_report_draws_the_evaluation(evaluated, tmp_path):
    workdir, best = evaluated["workdir"], evaluated["top"][0]
    path = client(workdir).download_artifacts(best.info.run_id, "eval/bench.json", str(tmp_path))
    rows = json.loads(open(path).read())
    assert sorted((r["image"], r["variant"]) for r in rows) == sorted(
        (n, v) for n in SIZES for v in ("", "self_ensemble"))
    assert {r["image"]: (r["height"], r["width"]) for r in rows} == SIZES
    html = (workdir / "reports" / f"{STUDY}.html").read_text(encoding="utf-8")
    section = html[html.index("Benchmark folders, scored as papers score them"):]
    assert f">{best.info.run_name}+</td>" in section and "Every image (20 rows)" in section  # 4 images x 5 rows


def test_a_named_trial_again_with_pillows_lr_replaces_its_figures_and_drops_its_stale_plus(evaluated):
    workdir, (best, second) = evaluated["workdir"], evaluated["top"]
    before = _metrics(workdir, second.info.run_id).metrics["eval/bench/psnr_y"]
    code, out = run_cli(["evaluate", "--study", STUDY, "--trials", second.info.run_name, "--data",
                         str(evaluated["bench"]), "--lr-kernel", "pil", "--workdir", str(workdir), "--no-report"],
                        evaluated["env"])
    assert code == 0, out[-3000:]
    assert [row[1] for row in _table(out)] == ["bicubic", second.info.run_name]
    after = _metrics(workdir, second.info.run_id)
    assert (after.tags["eval/bench/lr_kernel"], after.tags["eval/bench/self_ensemble"]) == ("pil", "false")
    assert after.metrics["eval/bench/psnr_y"] != before  # Pillow's LR is not MATLAB's
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    labels = list(load_evaluations(uri, load_runs(uri, [STUDY])).folders["label"])
    b, s = best.info.run_name, second.info.run_name
    assert labels[0] == "bicubic" and sorted(labels[1:]) == sorted([b, b + "+", s])  # no stale s+
    assert labels.index(b + "+") == labels.index(b) + 1
