"""The Ray side of a study: which cluster, what each trial gets, and what the hardware does.

Without `--address` a study starts a private local Ray (`address="local"`), whatever cluster the
machine last joined or RAY_ADDRESS names: a stopped `ray start` cluster must not make `run` hang.
`--address auto` joins the running cluster; `--address HOST:PORT` or `ray://HOST:PORT` a given one.

The driver never touches the GPU itself (no CUDA context held by the driver during a study): the
device's throughput for the cost estimate is measured by a Ray task that asks for the same resources
as a trial, so it runs where trials will run, on the device they will use.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from search.errors import StudyError
from search.study import Study


class ClusterError(StudyError):
    """The Ray cluster named by --address cannot be reached: a setup problem the user can fix."""


@dataclass(frozen=True)
class Cluster:
    cpus: float
    gpus: float
    nodes: int
    address: str  # what was joined ("local" for a private one)
    session_dir: str | None = None  # a private cluster's session folder (to find its processes later)


def check_address(address: str | None, timeout: float = 3.0) -> None:
    """Fail fast, before anything is written, when an explicit HOST:PORT does not answer."""
    if address in (None, "", "local", "auto"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"--address {address}: no Ray cluster answers at {host}:{port} ({exc.strerror or exc}); "
                           "start one (`ray start --head`) or drop --address to run on this machine") from None


# Ray Client's head forks one server process per connecting client, and that fork races gRPC's threads
# (ray-project/ray#63202): now and then the process segfaults at start (gone within 8 ms, its log empty,
# a segfault in cygrpc in the kernel log; on this 2-core machine 8 of 58 first connections). Ray then
# answers "Starting Ray client server failed", or, when it looks at the dead process a moment too late,
# with a traceback from start_specific_server (psutil.ZombieProcess). A new connection gets a new process.
_CLIENT_SERVER_START_FAILED = ("Starting Ray client server failed", "in start_specific_server",
                               "Proxy failed to Connect to backend")
CLIENT_CONNECT_ATTEMPTS = 5


def client_server_start_failed(message: str) -> bool:
    """Whether a failed ray.init says the head could not start this client's server process (a retry helps)."""
    return "Initialization failure from server" in message and any(m in message for m in _CLIENT_SERVER_START_FAILED)


@contextlib.contextmanager
def ray_session(address: str | None, env_vars: dict[str, str] | None = None, log=print) -> Iterator[Cluster]:
    """ray.init for the life of the block (a private local cluster unless --address), then shutdown."""
    import ray
    target = address or "local"
    kwargs = {"runtime_env": {"env_vars": env_vars}} if env_vars and target.startswith("ray://") else {}
    for attempt in range(1, CLIENT_CONNECT_ATTEMPTS + 1):
        try:
            # With ray://, Tune's loop (and the progress it prints) runs on the head: forward its output.
            context = ray.init(address=target, include_dashboard=False, log_to_driver=target.startswith("ray://"),
                               logging_level=logging.WARNING, **kwargs)
            break
        except (ConnectionError, TimeoutError) as exc:
            if client_server_start_failed(str(exc)) and attempt < CLIENT_CONNECT_ATTEMPTS:
                log(f"the Ray Client server on {address} failed to start this session's server process "
                    f"(attempt {attempt}/{CLIENT_CONNECT_ATTEMPTS}); connecting again")
                time.sleep(2.0 * attempt)
                continue
            raise ClusterError(f"--address {address}: cannot join the Ray cluster ({exc}); start one "
                               "(`ray start --head`) or drop --address to run on this machine") from None
    try:
        resources = ray.cluster_resources()
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        session = context.address_info.get("session_dir") if target == "local" else None
        yield Cluster(cpus=float(resources.get("CPU", 1.0)), gpus=float(resources.get("GPU", 0.0)),
                      nodes=nodes, address=target, session_dir=session)
    finally:
        ray.shutdown()


def trial_resources(study: Study, cluster: Cluster) -> tuple[dict[str, float], int]:
    """What each trial asks Ray for, and how many run at once on this cluster.

    A GPU study on a cluster without GPUs runs its trials on CPU unchanged. `gpus_per_trial` below 1
    packs several trials on one GPU (Ray's bookkeeping; the trials share its memory). Under a
    synchronous schedule Tune's concurrency limit cannot be used (it counts paused trials as running),
    so `max_concurrent` there reserves each trial a larger share of the CPUs instead (the trial still
    runs on `cpus_per_trial` threads).
    """
    gpus = study.resources.gpus_per_trial
    # "auto": a whole GPU until the packing is planned (search.tune.packing, after the device is measured)
    per_trial = {"cpu": min(study.resources.cpus_per_trial, cluster.cpus),
                 "gpu": (1.0 if gpus == "auto" else gpus) if cluster.gpus > 0 else 0.0}
    fits = math.floor(cluster.cpus / per_trial["cpu"] + 1e-9)
    if per_trial["gpu"] > 0:
        fits = min(fits, math.floor(cluster.gpus / per_trial["gpu"] + 1e-9))
    concurrency = min(study.resources.max_concurrent or max(fits, 1), max(study.num_trials, 1))
    if study.schedule == "halving" and study.resources.max_concurrent and concurrency < fits:
        per_trial["cpu"] = max(per_trial["cpu"], cluster.cpus / concurrency)
    return per_trial, concurrency


def final_resources(cluster: Cluster) -> dict[str, float]:
    """The final step is one trial: it takes a whole node's CPUs (as threads) and one GPU where any."""
    return {"cpu": max(1.0, math.floor(cluster.cpus / max(cluster.nodes, 1))), "gpu": 1.0 if cluster.gpus > 0 else 0.0}


def measure_trial_device(per_trial: dict[str, float], shapes: list | None = None, batch_size: int = 16,
                         final_threads: int = 0) -> tuple[str, float, int, list[dict], float]:
    """(device name, effective training FLOP/s, device memory in bytes (0 on CPU), the cost probe's rows
    for `shapes` (sr_core.cost_probe: real steps timed, a few per architecture), the final step's speedup
    on `final_threads` CPU threads against a trial's) measured by a Ray task placed like a trial."""
    import ray

    @ray.remote(max_calls=1)  # the worker exits afterwards: no CUDA context outlives the measurement
    def measure(threads: int) -> tuple[str, float, int, list[dict], float]:
        import torch

        from sr_core.cost_probe import probe, sample_shapes, time_shape
        from sr_core.throughput import measure_device_flops
        from sr_core.train import default_device
        device = default_device()
        cuda = device.type == "cuda"
        name = torch.cuda.get_device_name(0) if cuda else "cpu"
        memory = torch.cuda.get_device_properties(0).total_memory if cuda else 0
        rows = probe(shapes, batch_size, device, threads) if shapes else []
        speedup = 1.0
        if rows and not cuda and final_threads > threads:  # the final step's threads, on the middle shape
            middle = sample_shapes([(r["arch"], r["blocks"], r["channels"], r["params"]) for r in rows])[len(rows) // 2]
            previous = torch.get_num_threads()
            torch.set_num_threads(final_threads)
            try:
                faster = time_shape(*middle[:3], batch_size=batch_size, device=device, params=middle[3])["step_s"]
            finally:
                torch.set_num_threads(previous)
            slower = next(r["step_s"] for r in rows if (r["arch"], r["blocks"], r["channels"], r["params"]) == middle)
            speedup = max(slower / faster, 1.0)
        return name, measure_device_flops(device.type, threads), memory, rows, speedup

    threads = max(1, int(per_trial["cpu"]))
    options = {"num_cpus": per_trial["cpu"], "num_gpus": per_trial["gpu"]}
    return ray.get(measure.options(**options).remote(threads))


def local_scratch_cleanup(tag: str) -> None:
    """Remove this study's trial scratch folders on this node (trials clean their own; kills don't)."""
    import shutil

    from search.tune.trainable import scratch_root
    shutil.rmtree(scratch_root() / tag, ignore_errors=True)
    with contextlib.suppress(OSError):
        scratch_root().rmdir()  # only when no other study has scratch there


def reap_orphans(session_dir: str | None) -> int:
    """Kill what a killed driver's private Ray left running (Ray's agents outlive a kill -9 of the
    driver, orphaned). Only processes that hold files of that session's folder; returns how many."""
    proc = Path("/proc")
    if not session_dir or not proc.is_dir():
        return 0
    killed = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if _ppid(entry) != 1 or not any(os.readlink(fd).startswith(session_dir) for fd in (entry / "fd").iterdir()):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return killed


def _ppid(entry: Path) -> int:
    stat = (entry / "stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
