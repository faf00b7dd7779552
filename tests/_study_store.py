"""A finished study in a real MLflow sqlite store, written by search.tracking's own functions as
`sr-search run` writes it, in about a second and without training: each trial a real (untrained,
so exactly bicubic-like) residual net's best.pt, its params, status and summary metrics. For the fast
tests of what reads a study back (`sr-search evaluate`, the report's evaluation section); the slow
ones run a real study through Ray."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from _study_toml import study_toml
from mlflow.tracking import MlflowClient

from search import tracking
from search.study import parse_study
from sr_core.infer import save_weights
from sr_core.models import build_model


def study_text(name: str) -> str:
    return study_toml(study={"name": name}, search={"sampler": "grid"},
                      space={"arch": "residual", "blocks": [0, 1], "channels": [4], "lr": [1e-3, 2e-3, 3e-3],
                             "eta_min": 0.0})


@dataclass(frozen=True)
class StoredTrial:
    blocks: int
    lr: float
    status: str  # completed, early_stopped, pruned, diverged, ...
    best_mse: float | None  # best/val_mse, None: none logged (a trial that diverged at once)


def write_store(workdir: Path, name: str, trials: list[StoredTrial]) -> dict[str, str]:
    """The study `name` in WORKDIR/mlflow.db (artifacts in WORKDIR/mlartifacts); run name -> run id,
    with the study run under "study"."""
    workdir.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    study = parse_study(study_text(name), f"{name}.toml", name)
    experiment = tracking.ensure_experiment(client, workdir / "mlartifacts")
    parent = tracking.start_study_run(client, experiment, study, {}, {})
    ids = {"study": parent}
    for i, t in enumerate(trials):
        config = dataclasses.asdict(study.trial_config(
            {"arch": "residual", "blocks": t.blocks, "channels": 4, "lr": t.lr, "eta_min": 0.0}))
        run_id = tracking.create_trial_run(client, experiment, parent, name, f"t{i}", config, {})
        if t.best_mse is not None:
            tracking.log_values(client, run_id, {"best/val_mse": t.best_mse, "epochs_run": 2})
        if t.status in ("completed", "early_stopped", "pruned"):
            weights = workdir / "weights" / name / f"t{i}" / "best.pt"
            weights.parent.mkdir(parents=True)
            save_weights(weights, "residual", t.blocks, 4, build_model("residual", t.blocks, 4).state_dict())
            tracking.log_file(client, run_id, weights)
        tracking.set_status(client, run_id, t.status)
        ids[tracking.run_name(config)] = run_id
    tracking.set_status(client, parent, "completed")
    return ids
