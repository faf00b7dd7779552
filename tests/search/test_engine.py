"""The engine end to end on a tiny study: real Ray (local), real Optuna journal, real MLflow sqlite."""
import contextlib
import io
import os
import re

import numpy as np
import pytest
from _driver import ray_tmp
from _photos import write_photos
from _study_toml import study_toml
from mlflow.tracking import MlflowClient
from PIL import Image

from search.cli import main
from sr_core.contract import EXPERIMENT
from sr_core.trial_config import LOGGED_FIELDS

pytestmark = pytest.mark.slow  # real Ray, Optuna and MLflow, and an MLflow server


def study_text(data, val_data="") -> str:
    return study_toml(study={"name": "tiny", "data": data, "val_data": val_data}, search={"sampler": "grid"},
                      space={"arch": ["residual", "refiner"], "blocks": [0, 1], "channels": [4], "lr": [1e-3, 1e-2],
                             "eta_min": 1e-5},
                      train={"epochs": 4, "batch_size": 4, "patience": 10},
                      pruner={"kind": "asha", "grace_period": 1, "reduction_factor": 2},
                      resources={"cpus_per_trial": 1, "gpus_per_trial": 0})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    os.environ["RAY_TMPDIR"] = os.environ.get("RAY_TMPDIR") or ray_tmp(root)
    # an HR-only folder: its photos train as random crops, and the val folder's are cut into val patches
    photos, val = write_photos(root / "photos"), write_photos(root / "val", names=("chelsea",))
    study = root / "tiny.toml"
    study.write_text(study_text(photos, val))
    workdir = root / "w"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "--study", str(study), "--workdir", str(workdir)])
    return code, workdir, root, out.getvalue()


def _children(workdir):
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("sr.role") == "study"]
    children = [r for r in runs if r.data.tags.get("sr.role") == "trial"]
    return client, parents, children


def test_study_runs_and_tracks_one_parent_with_a_child_per_trial(tiny_run):
    code, workdir, _, _ = tiny_run
    assert code == 0
    client, parents, children = _children(workdir)
    assert len(parents) == 1 and len(children) == 8
    parent = parents[0]
    assert parent.data.tags["status"] == "completed"
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert parent.data.params["pruner.grace_period"] == "1"
    # random crops of the 3 photos (a default epoch: the 4 patches each holds); val: chelsea's 4 patches
    assert parent.data.params["data.train_images"] == "12" and parent.data.params["data.val_images"] == "4"
    assert parent.data.params["study.crops"] == "" and parent.data.params["study.val_data"].endswith("val")
    assert "estimate/device_hours" in parent.data.metrics and "bicubic/val_psnr" in parent.data.metrics
    assert {f"outside/{k}/gain_db" for k in ("sr-search", "pil", "opencv")} <= set(parent.data.metrics)
    assert "Best: **" in parent.data.tags["mlflow.note.content"]
    assert any(a.path.endswith("tiny.html") for a in client.list_artifacts(parent.info.run_id))
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        p = child.data.params
        assert child.info.run_name == (f"{p['arch']}_b{p['blocks']}_c{p['channels']}_lr{float(p['lr']):g}"
                                       f"_eta{float(p['eta_min']):g}")
        assert set(p) == {*LOGGED_FIELDS, "n_params", "flops_per_image"}  # every hyperparameter, derived
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val/mse")]
        assert steps == list(range(1, len(steps) + 1))  # one value per epoch, step = epoch
        assert int(child.data.metrics["epochs_run"]) == len(steps)


def test_status_tags_tell_the_truth(tiny_run):
    _, workdir, _, _ = tiny_run
    client, _, children = _children(workdir)
    statuses = {c.data.tags["status"] for c in children}
    assert statuses <= {"completed", "early_stopped", "pruned"}
    pruned = [c for c in children if c.data.tags["status"] == "pruned"]
    assert pruned, "ASHA with rf=2 over 8 trials must stop some"
    for c in pruned:  # stopped before the last epoch, at an ASHA rung
        assert c.data.metrics["epochs_run"] < 4
    completed = [c for c in children if c.data.tags["status"] == "completed"]
    assert completed and all(c.data.metrics["epochs_run"] == 4 for c in completed)
    for c in completed + pruned:
        arts = {a.path for a in client.list_artifacts(c.info.run_id)}
        assert {"best.pt", "samples.png"} <= arts


def test_report_is_written_and_status_lists_trials(tiny_run, capsys):
    _, workdir, _, _ = tiny_run
    report = workdir / "reports" / "tiny.html"
    assert report.exists() and report.stat().st_size > 1_000_000  # plotly.js inlined
    assert main(["status", "--study", "tiny", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert out.count("residual_b") + out.count("refiner_b") == 8


def test_running_again_without_resume_is_refused(tiny_run, capsys):
    _, workdir, root, _ = tiny_run
    assert main(["run", "--study", str(root / "tiny.toml"), "--workdir", str(workdir)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_predict_writes_128px_pngs_with_the_same_names(tiny_run, tmp_path):
    _, workdir, _, _ = tiny_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(inputs / f"{name}.png")
    out = tmp_path / "out"
    assert main(["predict", "--study", "tiny", "--workdir", str(workdir), "--input", str(inputs),
                 "--output", str(out), "--self-ensemble"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["a.png", "b.png"]
    assert all(Image.open(out / n).size == (128, 128) for n in written)


def test_predict_names_a_corrupt_input_and_writes_nothing(tiny_run, tmp_path, capsys):
    _, workdir, _, _ = tiny_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (32, 32)).save(inputs / "good.png")
    (inputs / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    assert main(["predict", "--study", "tiny", "--workdir", str(workdir), "--input", str(inputs),
                 "--output", str(out)]) == 2
    assert "bad.png" in capsys.readouterr().err
    assert not out.exists()


def test_pruned_trials_are_pruned_in_optuna_with_their_intermediate_values(tiny_run):
    import optuna
    from optuna.storages.journal import JournalFileBackend
    _, workdir, _, _ = tiny_run
    _, _, children = _children(workdir)
    by_trial = {c.data.tags["trial_id"]: c for c in children}
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(workdir / "studies/tiny/optuna.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    assert len(trials) == 8
    for t in trials:
        run = by_trial[t.user_attrs["ray_trial_id"]]
        status = run.data.tags["status"]
        expected = {"pruned": "PRUNED", "completed": "COMPLETE", "early_stopped": "COMPLETE"}[status]
        assert t.state.name == expected and t.user_attrs["status"] == status
        assert len(t.intermediate_values) == int(run.data.metrics["epochs_run"])
        if status == "pruned":  # Optuna keeps the value at the rung where ASHA stopped it
            assert t.value == t.intermediate_values[max(t.intermediate_values)]
        else:
            assert t.value == run.data.metrics["best/val_mse"]


def test_run_predict_and_the_report_name_the_same_best_trial(tiny_run, tmp_path, capsys):
    _, workdir, _, out = tiny_run
    printed = re.search(r"^best +: (\S+)", out, re.M).group(1)
    _, parents, children = _children(workdir)
    best = next(c for c in children if c.info.run_id == parents[0].data.tags["best_run_id"])
    assert best.info.run_name == printed and best.data.tags["status"] in ("completed", "early_stopped")
    finished = [c for c in children if c.data.tags["status"] in ("completed", "early_stopped")]
    assert best.data.metrics["best/val_mse"] == min(c.data.metrics["best/val_mse"] for c in finished)
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (32, 32)).save(inputs / "x.png")
    assert main(["predict", "--study", "tiny", "--workdir", str(workdir), "--input", str(inputs),
                 "--output", str(tmp_path / "out")]) == 0
    assert f"model        : {printed} " in capsys.readouterr().out
    assert f"<b>Best: {printed}</b>" in (workdir / "reports" / "tiny.html").read_text()


def test_progress_lines_carry_an_eta(tiny_run):
    _, _, _, out = tiny_run
    assert "warning      : a trial trains 12 steps (4 epochs of 12 images, batch 4)" in out  # before it ran
    lines = [line for line in out.splitlines() if "] epoch" in line]
    assert lines and all(re.search(r"\d+/8 ended, ETA ~\d", line) for line in lines)


def test_dashboard_serves_the_study_through_optuna_dashboards_http_api(tiny_run, tmp_path):
    import json as _json
    import subprocess
    import sys
    import time
    import urllib.request

    from _services import free_port
    _, workdir, _, _ = tiny_run
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "dashboard", "--study", "tiny", "--workdir",
                             str(workdir), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        url = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/dashboard/studies/" in url, url
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline:
            try:
                studies = _json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5))
            except OSError:
                time.sleep(0.5)
        (study,) = studies["study_summaries"]
        assert study["study_name"].startswith("tiny-")
        detail = _json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}"))
        states = sorted(t["state"] for t in detail["trials"])
        _, _, children = _children(workdir)
        expected = sorted({"pruned": "Pruned", "completed": "Complete", "early_stopped": "Complete"}[
            c.data.tags["status"]] for c in children)
        assert len(states) == 8 and states == expected
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ui_serves_the_store_and_its_url_opens_the_training_view(tiny_run):
    """`sr-search ui`: a real MLflow server on the workdir's store; the printed URL names the study's
    parent run and MLflow's "Model training" view, and the experiment carries the training kind."""
    import json as _json
    import subprocess
    import sys
    import time
    import urllib.request

    from _services import free_port
    _, workdir, _, _ = tiny_run
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "ui", "--study", "tiny", "--workdir", str(workdir),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = next(line for line in proc.stdout if line.startswith("MLflow UI"))
        _, (parent,), _ = _children(workdir)
        assert f"http://127.0.0.1:{port}/#/experiments/" in line
        assert f"/runs/{parent.info.run_id}?workflowType=machine_learning" in line, line
        api = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=sr-search"
        deadline, found = time.monotonic() + 90, None
        while found is None and time.monotonic() < deadline:
            try:
                found = _json.load(urllib.request.urlopen(api, timeout=5))
            except OSError:
                time.sleep(0.5)
        tags = {t["key"]: t["value"] for t in found["experiment"]["tags"]}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
    finally:
        proc.terminate()  # SIGTERM to sr-search alone: it must take the MLflow server down with it
        proc.wait(timeout=60)
    with pytest.raises(OSError):
        urllib.request.urlopen(api, timeout=5)


def test_a_study_far_beyond_a_working_day_starts_only_with_yes(tmp_path, capsys):
    args = ["run", "--study", "demo", "--workdir", str(tmp_path / "w"), "--tflops", "0.00001"]
    assert main(args + ["--dry-run"]) == 0  # --dry-run never asks
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "would take about" in err and "--yes" in err and "sr-search run --study demo" in err
    assert not (tmp_path / "w" / "mlflow.db").exists() and not (tmp_path / "w" / "studies").exists()
