"""The [final] step for real: after the search, the best trial's configuration is trained again as
its own MLflow run (role `final`), stopped by a Ctrl-C half-way, resumed with every epoch logged once,
and then it is the model `run`, `predict` and the report name beside the search's best."""
import re

import numpy as np
import pytest
from PIL import Image

from _driver import Driver, child_env, epochs_logged, run_cli, runs, write_study

pytestmark = pytest.mark.slow  # the real CLI in a child process (Ray, Optuna, MLflow), stopped and resumed

FINAL_EPOCHS = 8


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("final")
    study = write_study(root, "fin", blocks=(0, 1), lrs=(2e-3,), epochs=2, cpus=1, concurrent=2)
    study.write_text(study.read_text() + f"\n[final]\nepochs = {FINAL_EPOCHS}\n")
    workdir = root / "w"
    args = ["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1"]
    env = child_env(root)
    d = Driver(args, env)
    d.wait_for(r"^final        : ")
    d.wait_for(r"\] epoch +3 ")  # the trials run 2 epochs: this is the final step
    d.ctrl_c()
    stopped = {"code": d.finish(), "text": d.text,
               "final": [(r.data.tags["status"], r.info.status) for r in runs(workdir, "final")]}
    d = Driver(args + ["--resume"], env)
    resumed = {"code": d.finish(), "text": d.text}
    photos = root / "in"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(photos / "a.png")
    predicted = run_cli(["predict", "--study", "fin", "--workdir", str(workdir), "--input", str(photos),
                         "--output", str(root / "out")], env)
    return stopped, resumed, predicted, workdir


def test_the_final_step_stops_honestly_and_resumes_with_each_epoch_once(finished):
    stopped, resumed, _, workdir = finished
    assert stopped["code"] == 130, stopped["text"][-3000:]
    assert stopped["final"] == [("interrupted", "KILLED")]
    assert resumed["code"] == 0, resumed["text"][-3000:]
    (final,) = runs(workdir, "final")
    assert final.data.tags["status"] == "completed" and final.info.run_name.endswith("-final")
    assert sorted(e for e, _ in epochs_logged(workdir, final.info.run_id)) == list(range(1, FINAL_EPOCHS + 1))
    # the search's two trials ran once each (resume did not train them again); the final is no trial
    trials = runs(workdir)
    assert len(trials) == 2 and {t.data.tags["status"] for t in trials} == {"completed"}
    assert final.info.run_name == min(trials, key=lambda t: t.data.metrics["best/val_mse"]).info.run_name + "-final"
    (parent,) = runs(workdir, "study")
    assert parent.data.tags["final_run_id"] == final.info.run_id
    assert {f"outside/{k}/gain_db" for k in ("sr-search", "pil", "opencv")} <= set(parent.data.metrics)
    assert {f"outside_search/{k}/gain_db" for k in ("sr-search", "pil", "opencv")} <= set(parent.data.metrics)


def test_run_predict_and_the_report_label_the_final_model_beside_the_search_best(finished):
    _, resumed, predicted, workdir = finished
    text = resumed["text"]
    best = re.search(r"^best         : (\S+)", text, re.M).group(1)
    assert re.search(rf"^final        : {re.escape(best)}-final  val/mse", text, re.M), text[-2000:]
    assert re.search(r"^outside      : final model vs bicubic .*\(" + re.escape(best) + r"-final\)$", text, re.M)
    assert re.search(r"^outside      : search's best vs bicubic .*\(" + re.escape(best) + r"\)$", text, re.M)
    code, out = predicted
    assert code == 0, out
    assert re.search(rf"model        : {re.escape(best)}-final ", out), out
    html = (workdir / "reports" / "fin.html").read_text(encoding="utf-8")
    assert f"Final model: {best}-final</b> (completed)" in html and "Search&#39;s best: " in html
    assert f"trained again for {FINAL_EPOCHS} epochs" in html
