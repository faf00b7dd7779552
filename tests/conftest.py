"""Shared fixtures: quiet, offline, and confined to tmp folders."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The README's main job, run once per test session: `sr-search run --study demo` on the embedded
    photos (real Ray, Optuna and MLflow; the search, the audit, the final step and the report, about 8
    minutes on 2 cores). (the finished process, its workdir). Every test that only reads what the demo
    wrote takes this fixture instead of running the demo again."""
    root = tmp_path_factory.mktemp("demo")
    ray_tmp = Path(f"/tmp/srd-{os.getpid()}")  # Ray's sockets need a short path
    ray_tmp.mkdir(exist_ok=True)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "search.cli", "run", "--study", "demo", "--workdir", str(root / "w")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=1500)
    return done, root / "w"
