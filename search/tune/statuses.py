"""How a trial ended, decided once: the closing status from Tune's last result. The status vocabulary
(FINISHED, ENDED, ...), the Optuna and MLflow state each maps to, and the rule for the best trial live
in `sr_core.contract`, which the report reads with; docs/tracking-schema.md has the table.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def closing_status(last_result: Mapping[str, Any] | None, max_epochs: int) -> tuple[str, str]:
    """(status, reason) of a trial that Tune reports complete (not errored).

    A trial ends itself with a closing report (`final`) naming its status. A trial completed without
    one was stopped from outside by the scheduler: pruned at a rung (ASHA stops it there; a synchronous
    schedule stops it once it will never resume).
    """
    last = last_result or {}
    if last.get("final"):
        return str(last["final_status"]), str(last.get("final_reason", ""))
    epoch = int(last.get("epoch", 0) or 0)
    if epoch >= max_epochs:  # stopped at the very end, before its closing report arrived
        return "completed", ""
    return "pruned", f"stopped by the scheduler at epoch {epoch}"
