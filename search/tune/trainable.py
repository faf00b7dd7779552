"""The trial as Ray runs it, on whichever node Ray placed it: one `train_trial` with one report per epoch.

Each epoch's report carries the epoch's metrics, the best so far, the node it ran on, and, when the
trainer wrote a new checkpoint, the trial's checkpoint folder (Tune persists it to the study's storage,
so a retry or a resumed study continues from the last checkpointed epoch: every epoch for small nets,
every few for big ones, whose checkpoints are kept under 2% of the training time). A closing report
says how the trial ended (`final_status`, `final_reason`): the driver's callback turns it into MLflow
tags and Optuna's state. An exception inside the trial is caught and reported as `failed` with its
reason (a deterministic bug gains nothing from a retry); a process that dies (killed, OOM-killed by
the OS, node lost) is what Ray's FailureConfig retries.

The data arrives through Ray's object store (uint8 numpy arrays, zero-copy on the node), so no trial
reads a path that only the driver has. The checkpoint folder is node-local scratch under the system
temp folder, removed when the trial ends however it ends (the driver also sweeps it at the end).
"""
from __future__ import annotations

import shutil
import socket
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search.study import Study
from search.tune.packing import shape_of
from sr_core.data import SRData, SRPairs
from sr_core.full_val import FullImage, FullVal
from sr_core.photos import Photos
from sr_core.train import TrialConfig, best_metrics, default_device, train_trial
from sr_core.trial_config import space_point

#: Config keys that the search adds for the trial's own use (not TrialConfig fields); an audited trial's
#: AUDIT_KEY holds the pruned trial it continues (search.run.audit.audit_config).
SCRATCH_KEY, CPUS_KEY, AUDIT_KEY = "_scratch", "_cpus", "_audit"
SCRATCH_ROOT = "sr-search-trials"


def data_arrays(data: SRData) -> dict[str, np.ndarray]:
    """What goes into the object store: the train and val pairs (or the train photos of random crops:
    their pixels, offsets and sizes) as numpy arrays, which trials on the node read zero-copy."""
    train = ({f"train_{k}": v for k, v in data.train.arrays().items()} if isinstance(data.train, Photos)
             else {"train_lr": data.train.lr.numpy(), "train_hr": data.train.hr.numpy()})
    return {**train, "val_lr": data.val.lr.numpy(), "val_hr": data.val.hr.numpy(),
            "train_names": np.array(data.train.names), "val_names": np.array(data.val.names)}


def full_val_arrays(full_val: FullVal | None) -> dict | None:
    """What of the study's full-size val folder goes into the object store beside the data: each
    image's uint8 arrays (of many sizes: a list, not one array) and name, and how often trials score
    them; None without a folder."""
    if full_val is None:
        return None
    images = full_val.images
    return {"names": [i.name for i in images], "hr": [i.hr.numpy() for i in images],
            "lr": [i.lr.numpy() for i in images], "every": full_val.every}


def _full_val(arrays: dict | None) -> FullVal | None:
    if arrays is None:
        return None
    with warnings.catch_warnings():  # read-only arrays from the object store, never written (as _srdata)
        warnings.simplefilter("ignore", UserWarning)
        images = tuple(FullImage(n, torch.from_numpy(hr), torch.from_numpy(lr))
                       for n, hr, lr in zip(arrays["names"], arrays["hr"], arrays["lr"]))
    return FullVal(images, arrays["every"])


def _srdata(arrays: dict[str, np.ndarray]) -> SRData:
    # Arrays from the object store are read-only; the trainer never writes its inputs (tested), so
    # share them instead of copying hundreds of MB per trial.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tensor = {k: torch.from_numpy(v) for k, v in arrays.items() if not k.endswith("_names")}
    names = {s: tuple(arrays[f"{s}_names"].tolist()) for s in ("train", "val")}
    train = (Photos(tensor["train_pixels"], tensor["train_offsets"], tensor["train_sizes"], names["train"])
             if "train_pixels" in tensor else SRPairs(tensor["train_lr"], tensor["train_hr"], names["train"]))
    return SRData(train=train, val=SRPairs(tensor["val_lr"], tensor["val_hr"], names["val"]), test=None,
                  source="object store")


def scratch_root() -> Path:
    return Path(tempfile.gettempdir()) / SCRATCH_ROOT


def scratch_dir(tag: str, trial_id: str) -> Path:
    """A trial's node-local checkpoint folder; `tag` is unique per study run."""
    return scratch_root() / tag / trial_id


def trial_config(study: Study, config: dict[str, Any]) -> TrialConfig:
    """The TrialConfig of a Tune trial: the study's mapping of the point Optuna sampled."""
    return study.trial_config(space_point(config))


def run_trial(config: dict[str, Any], data: dict[str, np.ndarray], study: Study, packing=None,
              full_val: dict | None = None) -> None:
    """The Tune function trainable (wrapped with `tune.with_parameters(run_trial, data=..., study=...)`).
    With a `packing` (gpus_per_trial = "auto"), a config predicted not to fit the GPU closes as `oom`
    with the prediction as its reason, without training. `full_val` (`full_val_arrays`) is the study's
    full-size val folder, scored every few epochs (sr_core.full_val)."""
    import ray
    from ray import tune

    too_big = packing.too_big.get(shape_of(config)) if packing is not None else None
    if too_big:
        tune.report({"final": True, "final_status": "oom", "final_reason": f"skipped before training: {too_big}"})
        return

    torch.set_num_threads(max(1, int(config[CPUS_KEY])))
    context = ray.get_runtime_context()
    # the GPU share Ray placed the trial with (gpus_per_trial, or its "auto" fraction)
    node = {"node_id": context.get_node_id(), "hostname": socket.gethostname(),
            "gpus": float(context.get_assigned_resources().get("GPU", 0.0))}
    scratch = scratch_dir(config[SCRATCH_KEY], tune.get_context().get_trial_id())
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        restored = tune.get_checkpoint()
        if restored is None and config.get(AUDIT_KEY):  # a pruned trial audited: from where it stopped
            restored = tune.Checkpoint(config[AUDIT_KEY]["checkpoint"])
        if restored is not None:  # a retry or a resumed study: continue from the last reported epoch
            with restored.as_directory() as src:
                shutil.copytree(src, scratch, dirs_exist_ok=True)

        persisted = None  # the checkpoint epoch Tune holds

        def on_epoch(report: dict) -> bool:
            nonlocal persisted
            # Only a new checkpoint goes to Tune (which copies the folder to the study's storage): the
            # trainer writes a costly one every few epochs, not every epoch (CheckpointPolicy).
            new = report.get("checkpoint/epoch") not in (persisted, 0)
            tune.report({**report, **node}, checkpoint=tune.Checkpoint.from_directory(scratch) if new else None)
            persisted = report.get("checkpoint/epoch")
            return True  # ASHA stops a trial from outside (tune.report then exits the thread)

        # A synchronous schedule pauses trials at its rungs: those epochs are always checkpointed.
        closing, persist = _train(trial_config(study, config), data, scratch, on_epoch, study.rungs(),
                                  _full_val(full_val), (study.search.metric, study.search.direction))
        # The closing report repeats the last epoch number, so ASHA (time attribute = epoch) sees
        # nothing new. It carries the checkpoint only when the ending was not already persisted with
        # the last epoch's report (diverged, oom): a resume then knows not to run the trial again.
        tune.report({**closing, **node},
                    checkpoint=tune.Checkpoint.from_directory(scratch) if persist else None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if torch.cuda.is_available():  # this process serves the next trial (reuse_actors): give the
            torch.cuda.empty_cache()   # memory this one cached back to the GPU


def _train(config: TrialConfig, data: dict, scratch: Path, on_epoch, checkpoint_at: list[int],
           full_val: FullVal | None, objective: tuple[str, str]) -> tuple[dict, bool]:
    """Run the trial; (closing report, whether the checkpoint folder changed since the last report)."""
    try:
        result = train_trial(config, _srdata(data), device=default_device(), on_epoch=on_epoch,
                             checkpoint_dir=scratch, checkpoint_at=checkpoint_at, full_val=full_val,
                             objective=objective)
    except Exception as exc:  # the trial's own bug or bad state: recorded, never retried
        where = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})"
        return {"final": True, "final_status": "failed", "final_reason": reason[:500]}, False
    # No val/mse in it: schedulers and searchers look at epoch reports only.
    closing = {"final": True, "final_status": result.status, "final_reason": result.reason,
               "epoch": result.epochs, **best_metrics(result.best)}
    # completed and early_stopped were written (ended.json) before the last epoch's report.
    return closing, result.status in ("diverged", "oom")
