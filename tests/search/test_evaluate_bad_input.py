"""`sr-search evaluate`'s bad input through the real CLI on a real MLflow store: exit 2, one message
naming the file (or the pick), and nothing logged: no eval/* metric, tag or artifact on any run."""
import pytest
from _study_store import StoredTrial, write_store
from mlflow.tracking import MlflowClient
from PIL import Image
from skimage import data as skdata

from search.cli import main
from sr_core.contract import EXPERIMENT

TRIALS = [StoredTrial(0, 1e-3, "completed", 0.010), StoredTrial(1, 1e-3, "completed", 0.008),
          StoredTrial(0, 2e-3, "pruned", 0.005), StoredTrial(1, 2e-3, "diverged", None)]


def _photos(folder, lr=False):
    """An odd-sized colour crop and a gray one (with their MATLAB-style LR/ when asked)."""
    folder.mkdir(parents=True)
    Image.fromarray(skdata.chelsea()[:61, :83]).save(folder / "chelsea.png")
    Image.fromarray(skdata.camera()[:64, :64]).save(folder / "camera.png")
    if lr:
        (folder / "LR").mkdir()
        Image.fromarray(skdata.chelsea()[:15, :20]).save(folder / "LR" / "chelsea.png")
        Image.fromarray(skdata.camera()[:16, :16]).save(folder / "LR" / "camera.png")
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store (creating an MLflow database takes seconds) with two equal studies: `evalbad`, which
    every bad input is tried on, and `evalgood`, which the control evaluates for real."""
    workdir = tmp_path_factory.mktemp("evalbad") / "w"
    ids = write_store(workdir, "evalbad", TRIALS)
    write_store(workdir, "evalgood", TRIALS)
    return workdir, ids


def eval_written(workdir, study="evalbad") -> list[str]:
    """Every eval/* metric, tag and artifact on any run of the study."""
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    found = []
    for run in client.search_runs([exp.experiment_id], f"tags.study = '{study}'", max_results=1000):
        found += [k for k in {**run.data.metrics, **run.data.tags} if k.startswith("eval/")]
        found += [a.path for a in client.list_artifacts(run.info.run_id, "eval")]
    return found


def _evaluate(workdir, *args, study="evalbad"):
    return main(["evaluate", "--study", study, "--workdir", str(workdir), "--no-report", *args])


def test_a_good_folder_is_logged_so_the_checks_below_can_fail(store, tmp_path):
    workdir, _ = store
    assert _evaluate(workdir, "--data", str(_photos(tmp_path / "good")), study="evalgood") == 0
    assert {"eval/good/psnr_y", "eval/good/bicubic/psnr_y", "eval/good.json"} <= set(eval_written(workdir, "evalgood"))
    assert eval_written(workdir, "evalbad") == []  # the studies' runs are apart


def corrupt(root):
    (_photos(root) / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    return root, [], "broken.png"


def truncated(root):
    _photos(root)
    (root / "cut.png").write_bytes((root / "chelsea.png").read_bytes()[:300])
    return root, [], "cut.png"


def empty(root):
    root.mkdir()
    (root / "notes.txt").write_text("no images here")
    return root, [], "has no .png/.jpg/.jpeg/.bmp images"


def missing(root):
    return root, [], "benchmark folder not found"


def lr_without_hr(root):
    _photos(root, lr=True)
    Image.fromarray(skdata.coffee()[:16, :16]).save(root / "LR" / "coffee.png")
    return root, ["--lr-kernel", "given"], "LR/coffee.png has no HR image"


def hr_without_lr(root):
    _photos(root, lr=True)
    (root / "LR" / "camera.png").unlink()
    return root, ["--lr-kernel", "given"], "camera.png has no LR image"


def no_lr_folder(root):
    _photos(root)
    return root, ["--lr-kernel", "given"], "no LR folder in"


def wrong_lr_size(root):
    _photos(root, lr=True)
    Image.fromarray(skdata.camera()[:17, :16]).save(root / "LR" / "camera.png")
    return root, ["--lr-kernel", "given"], "LR/camera.png is 17x16 (HxW); its HR mod-cropped to 64x64 needs exactly 16x16"


def too_small(root):
    _photos(root)
    Image.fromarray(skdata.coffee()[:19, :40]).save(root / "tiny.png")
    return root, [], "tiny.png is 19x40 (HxW); scoring needs at least 20x20"


def unnamable(root):
    root = root.with_name("Set 5")
    _photos(root)
    return root, [], "'Set 5' becomes part of MLflow metric names"


@pytest.mark.parametrize("make", [corrupt, truncated, empty, missing, lr_without_hr, hr_without_lr, no_lr_folder,
                                  wrong_lr_size, too_small, unnamable])
def test_bad_input_exits_2_names_the_file_and_logs_nothing(make, store, tmp_path, capsys):
    workdir, _ = store
    folder, flags, named = make(tmp_path / "bench")
    assert _evaluate(workdir, "--data", str(folder), *flags) == 2
    err = capsys.readouterr().err
    assert named in err and str(tmp_path) in err, err
    assert eval_written(workdir) == []


def test_a_bad_folder_after_a_good_one_stops_before_anything_is_logged(store, tmp_path, capsys):
    workdir, _ = store
    good = _photos(tmp_path / "good")
    bad, _, named = corrupt(tmp_path / "bad")
    assert _evaluate(workdir, "--data", str(good), str(bad), "--self-ensemble") == 2
    assert named in capsys.readouterr().err
    assert eval_written(workdir) == []


def test_two_folders_of_one_name_are_refused(store, tmp_path, capsys):
    workdir, _ = store
    one, other = _photos(tmp_path / "a" / "bench"), _photos(tmp_path / "b" / "bench")
    assert _evaluate(workdir, "--data", str(one), str(other)) == 2
    assert "are both called 'bench'" in capsys.readouterr().err
    assert eval_written(workdir) == []


@pytest.mark.parametrize("picks, named", [
    (["residual_b3_c4_lr0.001_eta0"], "no trial of that run name"),
    (["residual_b1_c4_lr0.002_eta0"], "that trial ended diverged, without weights"),
    (["top:0"], "'top:0': write top:K with a whole number K >= 1"),
    (["top:two"], "'top:two'"),
])
def test_a_pick_that_matches_no_evaluable_trial_exits_2_and_logs_nothing(picks, named, store, tmp_path, capsys):
    workdir, ids = store
    assert "residual_b1_c4_lr0.002_eta0" in ids  # the diverged trial is in the study
    assert _evaluate(workdir, "--data", str(_photos(tmp_path / "bench")), "--trials", *picks) == 2
    assert named in capsys.readouterr().err
    assert eval_written(workdir) == []


def test_an_unknown_study_or_store_exits_2(store, tmp_path, capsys):
    workdir, _ = store
    folder = str(_photos(tmp_path / "bench"))
    assert main(["evaluate", "--study", "nosuch", "--workdir", str(workdir), "--data", folder]) == 2
    assert "no runs of study 'nosuch'" in capsys.readouterr().err
    assert main(["evaluate", "--study", "evalbad", "--workdir", str(tmp_path / "none"), "--data", folder]) == 2
    assert "has no MLflow store" in capsys.readouterr().err
    assert not (tmp_path / "none" / "mlflow.db").exists()
    assert eval_written(workdir) == []
