"""Run a module where Ray, Optuna and MLflow cannot be imported (a bare GPU box): a sitecustomize makes
importing those packages fail, in the spawned worker processes too. This tests our import discipline,
not those libraries."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BLOCKER = """import sys
for name in ("ray", "optuna", "mlflow"):
    sys.modules[name] = None  # `import ray` now raises ImportError, here and in every child process
"""


def bare_runner(tmp_path: Path):
    """A function running `python ARGS` from the repo root with ray, optuna and mlflow unimportable."""
    site = tmp_path / "blocker"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    return run
