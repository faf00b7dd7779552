"""Real services on 127.0.0.1, started by the tests themselves: a two-node Ray cluster, PostgreSQL
(Debian's binaries), and an MLflow tracking server. Never mocked."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def service_env(tmp: Path) -> dict[str, str]:
    from _driver import ray_tmp
    return {**os.environ, "RAY_TMPDIR": os.environ.get("RAY_TMPDIR") or ray_tmp(tmp),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@contextmanager
def ray_cluster(tmp: Path, head_cpus: int = 2, head_gpus: int = 0, worker_cpus: int = 2):
    """`ray start --head` plus a second node joining it, each with its own CPUs; yields the address.

    A head may declare GPUs it does not have (--num-gpus): Ray then schedules fractional-GPU trials
    on this CPU machine, which is how packing is tested without a GPU."""
    marker = f"sr-test-{os.getpid()}-{time.monotonic_ns()}"
    env = {**service_env(tmp), "SR_TEST_CLUSTER": marker}  # inherited by every process of this cluster
    port, client_port = free_port(), free_port()
    ray = str(BIN / "ray")
    head = [ray, "start", "--head", f"--port={port}", f"--num-cpus={head_cpus}", f"--num-gpus={head_gpus}",
            "--include-dashboard=false", "--disable-usage-stats", f"--ray-client-server-port={client_port}"]
    try:
        _start(head, env)
        _start([ray, "start", f"--address=127.0.0.1:{port}", f"--num-cpus={worker_cpus}", "--num-gpus=0",
                "--disable-usage-stats"], env)
        yield {"address": f"127.0.0.1:{port}", "client": f"ray://127.0.0.1:{client_port}", "env": env}
    finally:
        # Not `ray stop`, which stops every Ray on the machine: only the processes of this cluster.
        kill_marked(f"SR_TEST_CLUSTER={marker}")


def _start(command: list[str], env: dict) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:3])} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                           f"{done.stderr[-3000:]}")


def kill_marked(marker: str) -> int:
    """SIGKILL every process whose environment holds `marker`; returns how many."""
    needle, killed = marker.encode() + b"\0", 0
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read():
                    os.kill(int(pid), 9)
                    killed += 1
        except OSError:
            continue
    return killed


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is missing: apt-get install -y postgresql (.ci/run does)")
    return found[-1]


@contextmanager
def postgres(user: str = "sr", database: str = "optuna"):
    """A private PostgreSQL server (initdb + pg_ctl) on 127.0.0.1; yields (host, port, user, database).

    initdb refuses to run as root, so as root the server runs as Debian's `postgres` user in a folder
    it owns; its authentication is `trust` (any password is accepted, which the masking tests use)."""
    folder = Path(tempfile.mkdtemp(prefix="sr-pg-", dir="/tmp"))
    os.chmod(folder, 0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(folder, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    try:
        subprocess.run(as_user + [_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", user],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(as_user + [_pg_bin("pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                                  f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(as_user + [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
                       check=True, capture_output=True, timeout=60)
        yield {"host": "127.0.0.1", "port": port, "user": user, "database": database}
    finally:
        subprocess.run(as_user + [_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mlflow_server(tmp: Path):
    """`mlflow server` with a sqlite backend, one worker, on 127.0.0.1; yields its URL."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
                             "--artifacts-destination", str(tmp / "server-artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return urllib.request.urlopen(url + "/health", timeout=2).status == 200
        except OSError:
            return False

    try:
        _wait(healthy, "mlflow server", timeout=120)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
