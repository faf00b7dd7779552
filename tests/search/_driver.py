"""Drive the real `sr-search` CLI in a child process, as a user's terminal would, and read the stores back.

The child gets its own session (process group), so a "Ctrl-C" is SIGINT to the whole group, exactly
what a terminal sends; `kill -9` is SIGKILL to the driver alone.
"""
from __future__ import annotations

import hashlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
from _photos import write_photos
from _study_toml import study_toml
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend

from sr_core.contract import EXPERIMENT

ROOT = Path(__file__).resolve().parents[2]
SEAMS = Path(__file__).resolve().parent / "_seams"  # sitecustomize.py: the fault tests' hook

def write_study(folder: Path, name: str = "faults", *, blocks=(0, 1), channels=(4,), lrs=(1e-3, 2e-3), epochs=4,
                patience=10, epoch_samples=4, pruner="none", cpus=1, concurrent=1, faults=None,
                audit=0) -> Path:
    """A tiny grid study on two real photos (8 train / 4 val patches): epochs of a second or two."""
    photos = folder / "photos"
    if not photos.exists():
        write_photos(photos, ("astronaut", "coffee"))
    text = study_toml(
        study={"name": name, "data": photos},
        search={"sampler": "grid", "seed": 3},
        space={"arch": "residual", "blocks": list(blocks), "channels": list(channels), "lr": list(lrs),
               "eta_min": 0.0},
        train={"epochs": epochs, "batch_size": 4, "patience": patience, "epoch_samples": epoch_samples},
        pruner={"kind": pruner, "grace_period": 1, "reduction_factor": 2, "audit": audit},
        resources={"cpus_per_trial": cpus, "gpus_per_trial": 0, "max_concurrent": concurrent},
        faults=faults or None)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def ray_tmp(tmp: Path) -> str:
    """Ray's temp folder for the test using `tmp`: short, since Ray's sockets live inside it and a Unix
    socket path has at most 107 bytes (/tmp/pytest-of-root/pytest-50/... plus Ray's session path is 108)."""
    path = Path("/tmp") / f"srt-{hashlib.sha1(str(tmp).encode()).hexdigest()[:10]}"
    path.mkdir(exist_ok=True)
    return str(path)


def child_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The child's environment: its own temp folder (to check for leftovers), Ray's in a short path."""
    (tmp / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp / "tmp"),
           "RAY_TMPDIR": os.environ.get("RAY_TMPDIR") or ray_tmp(tmp),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.update(extra)
    if "SR_SEARCH_PAUSE_AT" in extra:  # the test's seam: hold the driver at that point (search.milestones)
        env["PYTHONPATH"] = str(SEAMS) + os.pathsep + env["PYTHONPATH"]
    return env


class Driver:
    """`sr-search ARGS` in a child process; its output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "search.cli", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 180.0) -> re.Match:
        """Read output until a line matches `pattern` (a regex); fail if the driver exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"driver exited ({self.proc.wait()}) before {pattern!r}:\n{self.text}")
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no {pattern!r} within {timeout:.0f} s:\n{self.text}")

    def finish(self, timeout: float = 300.0) -> int:
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)  # what a terminal sends: the whole process group

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def kill_9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    @property
    def text(self) -> str:
        return "".join(self.lines)


def run_cli(args: list[str], env: dict[str, str], timeout: float = 400.0) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "search.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


# -- reading the stores back -----------------------------------------------------------------------
def client(workdir: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")


def runs(workdir: Path, role: str = "trial") -> list:
    c = client(workdir)
    exp = c.get_experiment_by_name(EXPERIMENT)
    return c.search_runs([exp.experiment_id], f"tags.`sr.role` = '{role}'", max_results=1000)


def epochs_logged(workdir: Path, run_id: str) -> list[tuple[int, int]]:
    """(epoch, timestamp ms) of every val/mse value the run holds, in logging order."""
    return [(m.step, m.timestamp) for m in client(workdir).get_metric_history(run_id, "val/mse")]


def optuna_study(workdir: Path, study: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        JournalFileBackend(str(workdir / "studies" / study / "optuna.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def first_epochs_after(text: str, marker: str) -> dict[str, int]:
    """Per trial, the first epoch number printed after `marker` in a driver's output."""
    tail = text[text.index(marker):] if marker in text else text
    first: dict[str, int] = {}
    for epoch, name in re.findall(r"\] epoch +(\d+) (\S+):", tail):
        first.setdefault(name, int(epoch))
    return first


def last_epochs(text: str) -> dict[str, int]:
    last: dict[str, int] = {}
    for epoch, name in re.findall(r"\] epoch +(\d+) (\S+):", text):
        last[name] = max(last.get(name, 0), int(epoch))
    return last
