"""How a trial ended, what each store says about it, and which trial is "best": defined once, here.

Every place that needs one of these answers (the Tune callback writing MLflow and Optuna, `run`'s
summary, `status`, `predict`) calls these functions; `docs/tracking-schema.md` states the same rules
for the report, which reads MLflow only.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Ran to their end: their best val/mse is a final value. Only these can be "the best trial".
FINISHED = ("completed", "early_stopped")
#: Ended with weights worth keeping (best.pt and samples.png are logged for these).
WITH_WEIGHTS = FINISHED + ("pruned",)
#: Ended for good: a resume never runs them again.
ENDED = WITH_WEIGHTS + ("diverged", "oom", "failed")
#: Not ended: `running` while a driver runs it, `interrupted` when the driver stopped (resumable).
UNFINISHED = ("running", "interrupted")

#: Optuna's state for each ended status (the Optuna trial also carries user attrs status and reason).
OPTUNA_STATE = {"completed": "COMPLETE", "early_stopped": "COMPLETE", "pruned": "PRUNED",
                "diverged": "FAIL", "oom": "FAIL", "failed": "FAIL"}


def closing_status(last_result: Mapping[str, Any] | None, max_epochs: int) -> tuple[str, str]:
    """(status, reason) of a trial that Tune reports complete (not errored).

    A trial ends itself with a closing report (`final`) naming its status. A trial completed without
    one was stopped from outside by the scheduler: ASHA pruned it at a rung.
    """
    last = last_result or {}
    if last.get("final"):
        return str(last["final_status"]), str(last.get("final_reason", ""))
    epoch = int(last.get("epoch", 0) or 0)
    if epoch >= max_epochs:  # stopped at the very end, before its closing report arrived
        return "completed", ""
    return "pruned", f"stopped by ASHA at epoch {epoch}"


def best_of(trials: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The best trial: among trials that ran to their end (completed or early_stopped), the lowest
    best/val_mse (the val/mse of its best epoch, whose weights are saved). Ties go to the trial listed
    first. None when no trial finished. Pruned trials are never best: their val/mse is partial."""
    best = None
    for t in trials:
        value = t.get("best/val_mse")
        if t.get("status") not in FINISHED or value is None or not math.isfinite(float(value)):
            continue
        if best is None or float(value) < float(best["best/val_mse"]):
            best = t
    return best
