"""Which failures of joining a ray:// cluster `run` retries: the two ways Ray 2.60 reported the head's
client server process dying at start (ray-project/ray#63202), copied from runs on this machine, and
failures a retry cannot mend."""
from search.run.cluster import client_server_start_failed

PROXIER = "/venv/lib/python3.11/site-packages/ray/util/client/server/proxier.py"

# Seen in CI and here: the proxier polled the process after it died.
DIED = f"""Initialization failure from server:
Traceback (most recent call last):
  File "{PROXIER}", line 772, in Datapath
    raise RuntimeError(
RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err for detailed logs.
"""

# Seen here: the proxier read the dead process's command line first.
ZOMBIE = f"""Initialization failure from server:
Traceback (most recent call last):
  File "{PROXIER}", line 765, in Datapath
    if not self.proxy_manager.start_specific_server(
  File "{PROXIER}", line 396, in start_specific_server
    cmd = psutil_proc.cmdline()
psutil.ZombieProcess: PID still exists but it's a zombie (pid=17131)
"""


def test_the_head_losing_the_client_server_process_is_retried():
    assert client_server_start_failed(DIED)
    assert client_server_start_failed(ZOMBIE)


def test_failures_a_retry_cannot_mend_are_not_retried():
    assert not client_server_start_failed("Initialization failure from server:\nCall to `ray.init()` on the "
                                          "server failed with: version mismatch")
    assert not client_server_start_failed("ray client connection timeout")
    assert not client_server_start_failed("Starting Ray client server failed")  # not from the server's reply


# -- what each trial asks Ray for, and how many run at once ----------------------------------------
from _study_toml import study_toml  # noqa: E402

from search.run.cluster import Cluster, trial_resources  # noqa: E402
from search.study import parse_study  # noqa: E402


def _resources(cpus, gpus, most, cluster, kind="asha"):
    study = parse_study(study_toml(space={"blocks": [1, 2, 3, 4, 5, 6], "channels": [8], "lr": [1e-3]},
                                   search={"sampler": "grid"},
                                   resources={"cpus_per_trial": cpus, "gpus_per_trial": gpus, "max_concurrent": most},
                                   pruner={"kind": kind}), "test", "t")
    return trial_resources(study, cluster)


def test_trials_fit_by_cpus_on_a_cpu_cluster_and_a_gpu_study_runs_there_on_cpu():
    cpu_only = Cluster(cpus=8, gpus=0, nodes=1, address="local")
    assert _resources(2, 1, 0, cpu_only) == ({"cpu": 2, "gpu": 0.0}, 4)
    assert _resources(16, 0, 0, cpu_only) == ({"cpu": 8, "gpu": 0.0}, 1)  # asks for no more than there is


def test_fractional_gpus_pack_trials_and_the_scarcer_resource_decides():
    two_gpus = Cluster(cpus=16, gpus=2, nodes=2, address="auto")
    assert _resources(1, 0.25, 0, two_gpus) == ({"cpu": 1, "gpu": 0.25}, 6)  # 8 fit on the GPUs, 6 trials
    assert _resources(4, 0.25, 0, two_gpus) == ({"cpu": 4, "gpu": 0.25}, 4)  # the CPUs run out first
    assert _resources(1, 1, 0, two_gpus) == ({"cpu": 1, "gpu": 1}, 2)


def test_max_concurrent_caps_what_fits():
    assert _resources(1, 0, 3, Cluster(cpus=8, gpus=0, nodes=1, address="local"))[1] == 3


def test_under_a_synchronous_schedule_max_concurrent_reserves_cpus_instead_of_limiting_tune():
    cluster = Cluster(cpus=8, gpus=0, nodes=1, address="local")
    assert _resources(1, 0, 2, cluster, kind="halving") == ({"cpu": 4.0, "gpu": 0.0}, 2)  # 8 CPUs / 2 at once
    assert _resources(1, 0, 0, cluster, kind="halving") == ({"cpu": 1, "gpu": 0.0}, 6)  # as many as fit
