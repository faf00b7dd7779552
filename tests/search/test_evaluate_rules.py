"""`sr-search evaluate`'s pure rules, in milliseconds: which trials `--trials` picks, the table (bicubic
first, papers' "+" rows, per-image averaging, aligned), the metric keys, and how a folder is read."""
import math

import pytest
import torch
from mlflow.utils.validation import validate_param_and_metric_name
from PIL import Image
from skimage import data as skdata

from search import tracking
from search.apply.benchmark_folders import load_benchmark_folder
from search.apply.eval_table import format_table, table_order
from search.apply.evaluate import EvalOptions, EvalRow, ImageScore, ranked, select_trials, trial_rows
from search.errors import StudyError
from sr_core.contract import (BICUBIC, ENSEMBLE_FORWARDS, EVAL_METRICS, SELF_ENSEMBLE, eval_key, eval_label,
                              parse_eval_key)
from sr_core.dihedral import NUM_OPS
from sr_core.matlab_resize import matlab_downscale
from sr_core.models import build_model

# In start order, as tracking.study_trials lists them.
ROWS = [
    {"name": "a", "run_id": "1", "status": "completed", "best/val_mse": 0.010, "best/val_psnr_y": 30.0},
    {"name": "b", "run_id": "2", "status": "pruned", "best/val_mse": 0.004, "best/val_psnr_y": 33.0},
    {"name": "c", "run_id": "3", "status": "early_stopped", "best/val_mse": 0.008, "best/val_psnr_y": 31.0},
    {"name": "d", "run_id": "4", "status": "diverged", "best/val_mse": math.nan},
    {"name": "e", "run_id": "5", "status": "completed", "best/val_mse": 0.008, "best/val_psnr_y": 31.5},
]


def _names(rows):
    return [r["name"] for r in rows]


def test_top_k_are_the_finished_trials_by_the_study_metric_ties_to_the_first_started():
    assert _names(ranked(ROWS, 3, "val/mse", "min")) == ["c", "e", "a"]  # b is pruned: never ranked
    assert _names(ranked(ROWS, 2, "val/psnr_y", "max")) == ["e", "c"]
    assert ranked(ROWS, 1, "val/mse", "min") == [tracking.best_of(ROWS, "val/mse", "min")]


def test_top_k_beyond_the_finished_trials_gives_those_there_are():
    assert _names(select_trials(ROWS, ["top:10"], "val/mse", "min", "s")) == ["c", "e", "a"]


def test_picks_are_taken_in_order_each_trial_once_and_a_name_may_be_a_pruned_trial():
    picks = ["best", "b", "top:2", "a"]
    assert _names(select_trials(ROWS, picks, "val/mse", "min", "s")) == ["c", "b", "e", "a"]


@pytest.mark.parametrize("pick, message", [
    ("d", "that trial ended diverged"), ("zz", "no trial of that run name (its trials: a, b, c, d, e)"),
    ("top:0", "top:K with a whole number K >= 1"), ("top:", "top:K"), ("top:-1", "top:K"),
])
def test_a_pick_that_names_nothing_evaluable_is_a_study_error(pick, message):
    with pytest.raises(StudyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select_trials(ROWS, [pick], "val/mse", "min", "s")


def test_best_of_a_study_where_nothing_finished_is_a_study_error():
    unfinished = [r for r in ROWS if r["status"] not in ("completed", "early_stopped")]
    with pytest.raises(StudyError, match="no trial that ran to its end"):
        select_trials(unfinished, ["best"], "val/mse", "min", "s")


def _scores(*psnr_y):
    return tuple(ImageScore(f"i{k}", 40, 40, p, 0.5 + k / 10, p - 2) for k, p in enumerate(psnr_y))


def test_the_table_puts_bicubic_first_per_folder_then_each_trial_and_its_plus_row():
    made = [EvalRow("Set5", None, "res_b1", _scores(30, 40), 1000, 2e6),
            EvalRow("Set5", SELF_ENSEMBLE, "res_b1", _scores(31, 41), 1000, 16e6),
            EvalRow("Set14", None, "res_b1", _scores(28), 1000, 2e6),
            EvalRow("Set5", BICUBIC, "bicubic", _scores(28, 32)),
            EvalRow("Set14", BICUBIC, "bicubic", _scores(26))]
    assert [(r.folder, r.label) for r in table_order(made)] == [
        ("Set5", "bicubic"), ("Set5", "res_b1"), ("Set5", "res_b1+"), ("Set14", "bicubic"), ("Set14", "res_b1")]
    lines = format_table(made, "matlab").splitlines()
    table = lines[:7]
    assert len({len(line.rstrip()) for line in table[:2]}) == 1  # header and rule line up
    assert table[2].split() == ["Set5", "bicubic", "2", "30.00", "0.5500", "28.00", "-", "-"]  # per-image means
    assert table[3].split() == ["Set5", "res_b1", "2", "35.00", "0.5500", "33.00", "1k", "2M"]
    assert table[4].split() == ["Set5", "res_b1+", "2", "36.00", "0.5500", "34.00", "1k", "16M"]
    assert [line.index("30.00") for line in table[2:3]] == [table[3].index("35.00")]  # right-aligned figures
    assert "4 px cropped from each border" in lines[7] and "MATLAB's bicubic imresize" in lines[8]


def test_plus_is_papers_label_but_never_part_of_a_metric_key_mlflow_would_refuse():
    assert eval_label("res_b1", SELF_ENSEMBLE) == "res_b1+" and eval_label("x", BICUBIC) == "bicubic"
    assert validate_param_and_metric_name("eval/Set5+/psnr_y") is None  # why the key says self_ensemble
    for variant in (None, BICUBIC, SELF_ENSEMBLE):
        for metric in EVAL_METRICS:
            key = eval_key("Set5", metric, variant)
            assert validate_param_and_metric_name(key) and parse_eval_key(key) == ("Set5", variant, metric)
    assert parse_eval_key("eval/Set5/other/psnr_y") is None and parse_eval_key("val/psnr_y") is None
    assert ENSEMBLE_FORWARDS == NUM_OPS


def _folder(tmp_path, **images):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, array in images.items():
        Image.fromarray(array).save(tmp_path / name)
    return tmp_path


def test_a_folder_is_mod_cropped_gray_made_rgb_and_its_lr_is_matlabs(tmp_path):
    folder = load_benchmark_folder(_folder(tmp_path / "b", **{"odd.png": skdata.chelsea()[:61, :83],
                                                             "gray.bmp": skdata.camera()[:40, :44]}))
    gray, odd = folder.images  # by name
    assert (folder.name, gray.name, odd.name) == ("b", "gray", "odd")
    assert odd.hr.shape == (3, 60, 80) and torch.equal(odd.hr, torch.from_numpy(skdata.chelsea()[:60, :80]).permute(2, 0, 1))
    assert torch.equal(odd.lr, matlab_downscale(odd.hr))
    assert gray.hr.shape == (3, 40, 44) and torch.equal(gray.hr[0], gray.hr[2])  # the gray level on each channel
    pil = load_benchmark_folder(tmp_path / "b", "pil").images[1]
    assert pil.lr.shape == odd.lr.shape and not torch.equal(pil.lr, odd.lr)  # Pillow's is not MATLAB's


@pytest.fixture
def one_thread():
    """Tiny forwards on a busy 2-core machine: a second thread only adds stalls (50 ms, not 0.5 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_trial_rows_label_the_ensemble_and_count_its_eight_forwards(tmp_path, one_thread):
    folder = load_benchmark_folder(_folder(tmp_path / "b", **{"a.png": skdata.astronaut()[:48, :40]}))
    trial = {"name": "res_b0", "n_params": "1234", "flops_per_image": "1000000"}
    lines = []
    rows = trial_rows(build_model("residual", 0, 4), trial, [folder],
                      EvalOptions(data=(), self_ensemble=True, tile=4), log=lines.append)
    assert [(r.label, r.flops_per_image, r.n_params) for r in rows] == [
        ("res_b0", 1e6, 1234), ("res_b0+", 8e6, 1234)]
    # An untrained residual net is bicubic, and bicubic's rot90/flip variants agree with it closely
    assert rows[1].mean("psnr_y") == pytest.approx(rows[0].mean("psnr_y"), abs=0.5)
    assert "(9 tiles of 4 LR px)" in lines[0]  # a 12x10 LR in 4-pixel tiles: 3 x 3
