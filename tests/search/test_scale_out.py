"""The same study on real distributed services, all on 127.0.0.1 and started here: a two-node Ray
cluster, Optuna on PostgreSQL, an MLflow tracking server, a shared Tune storage folder; fractional GPU
packing on a head that declares a GPU; Ray Client (ray://); a private Ray when no --address is given;
and a trial whose process dies, which Ray's failure detection (not a heartbeat of ours) reports."""
import json
import os
import re
import subprocess

import optuna
import pytest
from _driver import Driver, child_env, epochs_logged, run_cli, runs, write_study
from _services import BIN, kill_marked, mlflow_server, postgres, ray_cluster
from mlflow.tracking import MlflowClient

from sr_core.contract import EXPERIMENT

pytestmark = pytest.mark.slow

PASSWORDS = ("pw-storage-9x7", "pw-tracking-3k1")


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("services")
    with ray_cluster(tmp, head_cpus=2, head_gpus=1, worker_cpus=2) as cluster, postgres() as pg, \
            mlflow_server(tmp) as mlflow_url:
        yield {"cluster": cluster, "pg": pg, "mlflow": mlflow_url, "tmp": tmp}


def _storage(pg, password=PASSWORDS[0]):
    return f"postgresql://{pg['user']}:{password}@{pg['host']}:{pg['port']}/{pg['database']}"


def _tracking(url, password=PASSWORDS[1]):
    return url.replace("http://", f"http://sr:{password}@")


@pytest.fixture(scope="module")
def distributed(services, tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    study = write_study(root, "spread", blocks=(0, 1), lrs=(1e-3, 2e-3), epochs=3, cpus=1, concurrent=4)
    workdir, shared = root / "w", root / "shared"
    code, out = run_cli(["run", "--study", str(study), "--workdir", str(workdir), "--address",
                         services["cluster"]["address"], "--storage", _storage(services["pg"]),
                         "--tracking-uri", _tracking(services["mlflow"]), "--ray-storage", str(shared)],
                        child_env(root))
    return {"code": code, "out": out, "workdir": workdir, "shared": shared, "root": root}


def _server_runs(url):
    client = MlflowClient(url)
    exp = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_trials_run_on_both_nodes_with_every_record_in_the_real_services(services, distributed):
    assert distributed["code"] == 0, distributed["out"]
    assert re.search(r"cluster +: 2 node\(s\), 4 CPU, 1 GPU", distributed["out"])
    all_runs = _server_runs(services["mlflow"])
    parents = [r for r in all_runs if r.data.tags.get("sr.role") == "study" and r.data.tags["study"] == "spread"]
    (parent,) = parents
    trials = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == 4 and {t.data.tags["status"] for t in trials} == {"completed"}
    nodes = {t.data.tags["ray.node_id"] for t in trials}
    assert len(nodes) == 2, nodes  # both nodes ran trials
    assert all(t.data.tags["host"] for t in trials)
    per_node = {n: sum(t.data.tags["ray.node_id"] == n for t in trials) for n in nodes}
    print(f"\ntrials per node: {sorted(per_node.values())}")
    # Optuna's study lives in PostgreSQL and holds the same four trials.
    pg = services["pg"]
    storage = f"postgresql+psycopg://{pg['user']}@{pg['host']}:{pg['port']}/{pg['database']}"
    name = json.loads((distributed["workdir"] / "studies/spread/state.json").read_text())["optuna_study"]
    ot = optuna.load_study(study_name=name, storage=storage)
    assert len(ot.trials) == 4 and {t.state.name for t in ot.trials} == {"COMPLETE"}
    assert {t.user_attrs["ray_trial_id"] for t in ot.trials} == {t.data.tags["trial_id"] for t in trials}
    print(f"trials in PostgreSQL: {len(ot.trials)}, in the MLflow server: {len(trials)}")
    # The experiment and every trial checkpoint went to the shared Tune storage, not the workdir.
    assert list(distributed["shared"].glob(f"{name}/*/checkpoint_*"))
    assert not (distributed["workdir"] / "studies/spread/ray").exists()


def test_no_password_is_printed_logged_or_stored(services, distributed):
    assert not any(p in distributed["out"] for p in PASSWORDS)
    assert "sr:***@" in distributed["out"]  # the URIs are shown, masked
    for path in [*distributed["workdir"].rglob("*"), *distributed["shared"].rglob("*")]:
        if path.is_file() and path.stat().st_size < 50_000_000:
            data = path.read_bytes()
            assert not any(p.encode() in data for p in PASSWORDS), path
    for run in _server_runs(services["mlflow"]):
        values = [*run.data.params.values(), *run.data.tags.values()]
        assert not any(p in v for v in values for p in PASSWORDS), run.info.run_name


def test_resuming_a_password_study_needs_the_uri_again(services, distributed):
    args = ["run", "--study", str(distributed["root"] / "spread.toml"), "--workdir", str(distributed["workdir"]),
            "--resume", "--address", services["cluster"]["address"]]
    code, out = run_cli(args, child_env(distributed["root"]))
    assert code == 2 and "holds a password, which is never stored" in out, out
    assert not any(p in out for p in PASSWORDS)


def test_fractional_gpus_pack_four_trials_on_one_gpu(services, tmp_path):
    # The head declares one GPU it does not have: Ray's packing is bookkeeping, testable on a CPU.
    study = write_study(tmp_path, "packed", blocks=(0, 1), lrs=(1e-3, 2e-3), epochs=6, cpus=0.5, concurrent=4)
    study.write_text(study.read_text().replace("gpus_per_trial = 0", "gpus_per_trial = 0.25"))
    workdir = tmp_path / "w"
    code, out = run_cli(["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1",
                         "--address", services["cluster"]["address"], "--no-report"], child_env(tmp_path))
    assert code == 0, out
    assert "0.5 CPU + 0.25 GPU per trial, 4 at a time" in out
    trials = runs(workdir)
    assert len(trials) == 4 and len({t.data.tags["ray.node_id"] for t in trials}) == 1  # the GPU node
    latest_start = max(t.info.start_time for t in trials)
    earliest_end = min(t.info.end_time for t in trials)
    assert latest_start < earliest_end, "all four must have run at the same time on the one GPU"
    print(f"\ntrials overlapping on the fake GPU: 4 (for {(earliest_end - latest_start) / 1000:.1f} s)")


def test_ray_client_address_runs_a_study(services, tmp_path):
    study = write_study(tmp_path, "client", blocks=(0,), lrs=(1e-3, 2e-3), epochs=2, cpus=1, concurrent=2)
    workdir = tmp_path / "w"
    code, out = run_cli(["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1",
                         "--address", services["cluster"]["client"], "--no-report"], child_env(tmp_path))
    assert code == 0, out
    assert {t.data.tags["status"] for t in runs(workdir)} == {"completed"} and len(runs(workdir)) == 2


def test_without_address_a_study_starts_its_own_ray_even_after_a_cluster_was_stopped(tmp_path):
    env = {**child_env(tmp_path), "SR_TEST_CLUSTER": f"stopped-{os.getpid()}"}
    started = subprocess.run([str(BIN / "ray"), "start", "--head", "--port=0", "--num-cpus=1",
                              "--include-dashboard=false", "--disable-usage-stats"],
                             env=env, capture_output=True, text=True, timeout=120)
    address = re.search(r"ray start --address='([^']+)'", started.stdout + started.stderr).group(1)
    kill_marked(f"SR_TEST_CLUSTER={env['SR_TEST_CLUSTER']}")  # the cluster is gone; its address stays known
    study = write_study(tmp_path, "alone", blocks=(0,), lrs=(1e-3,), epochs=1, cpus=1)
    # (run_cli's timeout is the hang guard: joining the stopped cluster would wait forever)
    code, out = run_cli(["run", "--study", str(study), "--workdir", str(tmp_path / "w"), "--tflops", "1",
                         "--no-report"], {**env, "RAY_ADDRESS": address}, timeout=240)
    assert code == 0, out
    assert "1 node(s)" in out and "(local)" in out


def _trial_processes(marker: bytes) -> list[int]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                name = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if name.startswith(b"ray::ImplicitFunc") and marker in env:
            found.append(int(pid))
    return found


def test_a_trial_whose_process_dies_is_retried_then_marked_failed_in_both_stores(tmp_path):
    study = write_study(tmp_path, "dies", blocks=(0,), lrs=(1e-3, 2e-3), epochs=8, cpus=1, concurrent=1)
    study.write_text(study.read_text().replace("max_concurrent = 1", "max_concurrent = 1\nmax_failures = 1"))
    env = child_env(tmp_path)
    workdir = tmp_path / "w"
    marker = f"TMPDIR={tmp_path / 'tmp'}\0".encode()
    d = Driver(["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1", "--no-report"], env)
    victim = d.wait_for(r"\] epoch   2 (\S+):").group(1)
    for pid in _trial_processes(marker):
        os.kill(pid, 9)  # the OS's OOM killer, a lost node: the process is gone without a word
    d.wait_for(r"\] retry +" + re.escape(victim))
    resumed_at = int(d.wait_for(r"\] epoch +(\d+) " + re.escape(victim)).group(1))
    for pid in _trial_processes(marker):
        os.kill(pid, 9)  # again: more deaths than max_failures allows
    assert d.finish() == 0, d.text
    trials = {t.info.run_name: t for t in runs(workdir)}
    dead = trials[victim]
    assert dead.data.tags["status"] == "failed" and dead.info.status == "FAILED"
    assert "process failed 2 time(s)" in dead.data.tags["reason"]
    assert resumed_at >= 2  # the retry continued from its checkpoint (at most one epoch lost)
    assert sorted({e for e, _ in epochs_logged(workdir, dead.info.run_id)}) == list(range(1, resumed_at + 1))
    (other,) = [t for n, t in trials.items() if n != victim]
    assert other.data.tags["status"] == "completed"  # the study carried on
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(workdir / "studies/dies/optuna.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    ot = {t.user_attrs["ray_trial_id"]: t for t in optuna.load_study(study_name=summary.study_name,
                                                                     storage=storage).trials}
    failed = ot[dead.data.tags["trial_id"]]
    assert failed.state.name == "FAIL" and failed.user_attrs["reason"] == dead.data.tags["reason"]
