"""The UIs users already know, served on 127.0.0.1 for a workdir: MLflow's (training runs) and
optuna-dashboard (the study's Optuna storage)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from search.errors import StudyError
from search.redaction import is_masked, mask
from search.state import StudyState
from search.workdir import Workdir

MLFLOW_TRAINING_VIEW = "machine_learning"  # the UI's "Model training" workflow


def mlflow_ui(workdir: Workdir, port: int, study: str | None = None, log=print) -> int:
    """Serve MLflow's UI on the workdir's store; print the URL of the training runs (or of a study's run)."""
    from mlflow.tracking import MlflowClient

    from search.tracking import latest_study_run
    from sr_core.contract import EXPERIMENT
    if not (workdir.root / "mlflow.db").exists():
        raise StudyError(f"no MLflow store in {workdir.root}; run a study first (sr-search run --study demo)")
    client = MlflowClient(workdir.mlflow_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise StudyError(f"{workdir.root / 'mlflow.db'} has no sr-search experiment yet; run a study first")
    url = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs"
    if study:
        found = latest_study_run(client, study)
        if found is None:
            raise StudyError(f"no runs of study {study!r} in {workdir.root}")
        url = f"{url}/{found[1]}"
    # MLflow 3.17's sidebar switch (GenAI / Model training) lives in the browser's localStorage and
    # starts on GenAI; the experiment's mlflow.experimentKind tag does not move it (seen in headless
    # Chromium: a fresh browser opened our runs on the GenAI "Overview"). The URL parameter does.
    url += f"?workflowType={MLFLOW_TRAINING_VIEW}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", workdir.mlflow_uri,
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log(f"MLflow UI    : {url}  (Ctrl-C to stop)")
    return _serve(cmd, env)


def _serve(cmd: list[str], env: dict) -> int:
    """Run the server until it exits, Ctrl-C or SIGTERM; either signal stops the server too (a
    SIGTERM to us alone would otherwise leave it running)."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt
    proc = subprocess.Popen(cmd, env=env)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def study_storage(workdir: Workdir, study: str, storage: str | None = None) -> tuple[str, str]:
    """(Optuna study name, storage spec) of a study's latest run, from its state in the workdir."""
    state = StudyState.load(workdir.study_dir(study))
    if state is None:
        raise StudyError(f"no study {study!r} in {workdir.root}; run it first (sr-search run --study {study})")
    spec = state.optuna
    if storage:
        if mask(storage) != spec:
            raise StudyError(f"--storage {mask(storage)} is not this study's Optuna storage ({spec})")
        spec = storage
    elif is_masked(spec):
        raise StudyError(f"the study's Optuna storage {spec} holds a password, which is never stored: "
                         "pass --storage with it")
    return state.optuna_study, spec


def dashboard(workdir: Workdir, study: str, port: int, storage: str | None = None, log=print) -> int:
    """Serve optuna-dashboard on the study's Optuna storage, bound to 127.0.0.1."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise StudyError("optuna-dashboard is not installed: pip install optuna-dashboard") from None
    import optuna

    from search.tune.optuna_store import sqlalchemy_url
    name, spec = study_storage(workdir, study, storage)
    if "://" in spec:
        backend = optuna.storages.RDBStorage(sqlalchemy_url(spec))
    else:
        from optuna.storages.journal import JournalFileBackend
        backend = optuna.storages.JournalStorage(JournalFileBackend(str(Path(spec))))
    study_id = backend.get_study_id_from_name(name)
    log(f"dashboard    : http://127.0.0.1:{port}/dashboard/studies/{study_id}  (Optuna study {name}; "
        "Ctrl-C to stop)")
    sys.stdout.flush()
    try:
        run_server(backend, host="127.0.0.1", port=port)
    except KeyboardInterrupt:
        pass
    return 0
