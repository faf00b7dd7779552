"""gpus_per_trial = "auto" for real: a Ray head declaring a GPU it does not have, a stated 2.2 GiB per
GPU, and a grid whose configs need from a tenth of that to more than all of it. Ray places each trial
with its own fraction; the one that cannot fit is named before anything runs and skipped."""
import re

import pytest
from _driver import run_cli, write_study
from _services import ray_cluster
from mlflow.tracking import MlflowClient

from sr_core.contract import EXPERIMENT

pytestmark = pytest.mark.slow  # a real 2-node Ray cluster, the CLI in a child process


def test_each_config_gets_its_predicted_fraction_and_the_one_that_cannot_fit_is_skipped(tmp_path):
    study = write_study(tmp_path, "packed", blocks=(0,), channels=(4, 128, 712), lrs=(1e-3,), epochs=2, cpus=1,
                        concurrent=0)
    text = study.read_text()
    text = re.sub(r"gpus_per_trial = [^\n]*\n", "", text)
    study.write_text(text.replace("[resources]\n", '[resources]\ngpus_per_trial = "auto"\ngpu_memory_gib = 2.2\n'))
    with ray_cluster(tmp_path, head_cpus=2, head_gpus=1, worker_cpus=1) as cluster:
        code, out = run_cli(["run", "--study", str(study), "--workdir", str(tmp_path / "w"), "--tflops", "1",
                             "--address", cluster["address"], "--no-report"], cluster["env"])
    assert code == 0, out[-3000:]
    assert "packing      : gpus_per_trial auto on 2.2 GiB GPUs: 1 at 1/2 GPU, 1 at a whole GPU" in out, out
    assert re.search(r"skipped      : residual b0 c712 batch 4: predicted peak .* does not fit in 2\.20 GiB", out)
    c = MlflowClient(f"sqlite:///{tmp_path / 'w' / 'mlflow.db'}")
    exp = c.get_experiment_by_name(EXPERIMENT)
    runs = {r.data.params["channels"]: r for r in c.search_runs([exp.experiment_id], "tags.`sr.role` = 'trial'")}
    assert set(runs) == {"4", "128", "712"}
    assert runs["4"].data.tags["ray.gpus"] == "0.5" and runs["128"].data.tags["ray.gpus"] == "1.0"
    assert runs["4"].data.tags["status"] == runs["128"].data.tags["status"] == "completed"
    skipped = runs["712"].data.tags
    assert skipped["status"] == "oom" and skipped["reason"].startswith("skipped before training: residual b0 c712")
    assert "ray.gpus" not in skipped  # it never reported an epoch
