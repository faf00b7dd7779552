"""A user's own architecture through the real CLI: a factory that fails stops `sr-search run` before
anything runs (exit 2, the arch named); the docs' example, a file outside the package with a searched
parameter of its own (`groups`), is searched end to end with synchronous halving (real Ray, Optuna,
MLflow), then reported, used by `predict` and `evaluate`."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from _driver import ROOT, child_env, run_cli, runs
from _photos import write_photos
from _study_toml import study_toml

pytestmark = pytest.mark.slow  # real CLI processes

EXAMPLE = Path(__file__).parents[1] / "user_arch_example.py"
# Every case is refused in-process by tests/sr_core/test_archs.py; through the real CLI (exit 2, nothing
# written) one that fails to import and one whose net is wrong, the two places a study stops
BAD = {  # module source -> what the error says
    "import_error": ("raise ImportError('needs the moon')", "cannot import module"),
    "wrong_channels": ("from torch import nn\ndef make(blocks, channels):\n"
                       "    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.PixelShuffle(4))",
                       "gave [1, 1, 128, 128]; expected [1, 3, 128, 128]"),
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """Each bad factory's study run by `python -m search.cli run` from the folder of its module, all at once."""
    root = tmp_path_factory.mktemp("bad_archs")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {}
    for case, (source, _) in BAD.items():
        folder = root / case
        folder.mkdir()
        (folder / f"{case}_net.py").write_text(source + "\n")
        (folder / "study.toml").write_text(study_toml(space={"arch": f"{case}_net:make", "blocks": [1], "channels": [4]}))
        procs[case] = subprocess.Popen([sys.executable, "-m", "search.cli", "run", "--study", "study.toml",
                                        "--workdir", "w"], cwd=folder, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
    return {case: (p.wait(timeout=300), p.stdout.read(), root / case) for case, p in procs.items()}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_failing_factory_stops_the_run_with_exit_2_naming_the_arch(refused, case):
    code, out, folder = refused[case]
    assert code == 2, out
    assert f"study.toml: [space].arch: arch '{case}_net:make': " in out and BAD[case][1] in out, out
    assert not (folder / "w").exists()  # nothing was written


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("user_arch")
    nets = root / "nets"
    nets.mkdir()
    shutil.copy(EXAMPLE, nets / "my_sr_nets.py")  # the user's file: importable from PYTHONPATH only
    env = child_env(root)
    env["PYTHONPATH"] = str(nets) + os.pathsep + env["PYTHONPATH"]
    study = root / "grouped.toml"
    study.write_text(study_toml(
        study={"name": "grouped", "data": write_photos(root / "photos", ("astronaut", "coffee"))},
        search={"sampler": "grid", "seed": 3},
        space={"arch": "my_sr_nets:make_net", "blocks": [1], "channels": [4], "groups": [1, 2],
               "lr": [1e-3, 2e-3], "eta_min": 0.0},
        train={"epochs": 2, "batch_size": 4, "epoch_samples": 4},
        pruner={"kind": "halving", "grace_period": 1, "reduction_factor": 2},
        resources={"cpus_per_trial": 1, "gpus_per_trial": 0}))
    workdir = root / "w"
    ran = run_cli(["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1", "--no-report"], env)
    report = run_cli(["report", "--study", "grouped", "--workdir", str(workdir)], env)
    inputs, out = root / "in", root / "out"
    inputs.mkdir()
    Image.new("RGB", (40, 24), (120, 60, 30)).save(inputs / "a.png")
    predicted = run_cli(["predict", "--study", "grouped", "--workdir", str(workdir), "--input", str(inputs),
                         "--output", str(out)], env)
    bench = write_photos(root / "bench", ("chelsea", "camera"))  # two 256x256 photos, one gray
    evaluated = run_cli(["evaluate", "--study", "grouped", "--data", str(bench), "--workdir", str(workdir)], env)
    return {"ran": ran, "report": report, "predicted": predicted, "evaluated": evaluated, "workdir": workdir,
            "out": out}


def test_the_users_arch_is_searched_with_its_own_parameter_under_halving(searched):
    code, text = searched["ran"]
    assert code == 0, text[-3000:]
    trials = runs(searched["workdir"])
    assert sorted(t.data.tags["status"] for t in trials) == ["completed"] * 2 + ["pruned"] * 2
    params = {t.info.run_name: t.data.params for t in trials}
    assert sorted(p["groups"] for p in params.values()) == ["1", "1", "2", "2"]
    assert all(p["arch_params"] == "groups" for p in params.values())
    assert all(f"_groups{p['groups']}_" in name for name, p in params.items())
    # parameters and FLOPs were counted on the net each trial built: grouped convs have fewer
    by_groups = {p["groups"]: (int(p["n_params"]), int(p["flops_per_image"])) for p in params.values()}
    assert by_groups["2"][0] < by_groups["1"][0] and by_groups["2"][1] < by_groups["1"][1]


def test_the_report_draws_the_effect_of_the_users_parameter(searched):
    code, text = searched["report"]
    assert code == 0, text[-3000:]
    html = (searched["workdir"] / "reports" / "grouped.html").read_text()
    assert "Groups effect" in html


def test_predict_and_evaluate_rebuild_the_users_net_from_best_pt(searched):
    code, text = searched["predicted"]
    assert code == 0, text[-3000:]
    assert Image.open(searched["out"] / "a.png").size == (160, 96)
    code, text = searched["evaluated"]
    assert code == 0, text[-3000:]
    assert "my_sr_nets:make_net_b1_c4_groups" in text
