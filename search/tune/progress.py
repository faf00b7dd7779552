"""The study's progress line: one line per trial event, with trials by status, the best so far and an
ETA. It lives in the driver's Tune callback, so Tune pickles it with the experiment state."""
from __future__ import annotations

import time
from typing import Callable

from search.tracking import run_name
from sr_core.contract import EPOCHS_RUN


class Progress:
    """One line per event: elapsed time, the event, trials by status, the best so far, and an ETA.

    The ETA counts epochs: with the schedule's plan (`planned_epochs`), the plan's epochs not trained
    yet; without, the epochs still to run (unfinished trials to their last epoch, trials not started yet
    at the mean length of the trials that ended); times this session's wall time per epoch. Before the first epoch it is the cost estimate's; with no estimate
    (the audit and the final step: `estimate_seconds=None`) the line says it comes after the first epoch.
    """

    def __init__(self, total_trials: int, max_epochs: int, estimate_seconds: float | None,
                 clock: Callable[[], float] = time.monotonic, planned_epochs: int = 0, full_share: float = 1.0):
        self.total_trials, self.max_epochs, self.estimate_seconds = total_trials, max_epochs, estimate_seconds
        # The schedule's plan (search.rungs.planned_epochs): every trial-epoch it trains, and the share of
        # trials it takes to the full budget. 0: no plan (every trial to its last epoch).
        self.planned_epochs, self.full_share = planned_epochs, full_share
        self.clock = clock  # seconds, monotonic (tests give their own)
        self.statuses: dict[str, str] = {}
        self.epochs: dict[str, int] = {}
        self.best: tuple[float, str] | None = None
        self.epochs_run = 0
        self.started = clock()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("statuses", "epochs", "best", "epochs_run")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"planned_epochs": 0, "full_share": 1.0, **state})  # older pickles had no plan
        self.statuses, self.epochs, self.best, self.epochs_run = {}, {}, None, 0
        self.started = self.clock()  # a resumed study counts from its own start

    def result(self, trials, trial, result: dict, replayed: bool) -> None:
        psnr = float(result.get("val/psnr", float("nan")))
        self.epochs[trial.trial_id] = int(result["epoch"])
        self.epochs_run += 0 if replayed else 1
        if self.best is None or psnr > self.best[0]:
            self.best = (psnr, run_name(trial.config))
        self.event(trials, f"epoch {int(result['epoch']):>3} {run_name(trial.config)}: val/psnr {psnr:.2f} dB"
                   + (" (replayed)" if replayed else ""))

    def closed(self, trials, trial, status: str, summary: dict) -> None:
        self.statuses[trial.trial_id] = status
        self.epochs[trial.trial_id] = int(summary.get(EPOCHS_RUN, 0))
        best = f": best val/psnr {summary['best/val_psnr']:.2f} dB" if "best/val_psnr" in summary else ""
        self.event(trials, f"{status:<7} {run_name(trial.config)}{best}")

    def eta_seconds(self, trials) -> float | None:
        elapsed = self.clock() - self.started
        if self.epochs_run == 0:
            return None if self.estimate_seconds is None else max(self.estimate_seconds - elapsed, 0.0)
        if self.planned_epochs:
            # The plan's epochs not trained yet, less those that trials stopped early on patience will not
            # train (each would have gone to the full budget with the plan's share), at this session's wall
            # time per epoch: a synchronous schedule's pauses do not make it jump.
            done = sum(self.epochs.values())
            saved = sum(self.max_epochs - self.epochs.get(tid, 0) for tid, status in self.statuses.items()
                        if status == "early_stopped") * self.full_share
            return max(self.planned_epochs - done - saved, 0.0) * elapsed / self.epochs_run
        ended = [self.epochs.get(tid, 0) for tid in self.statuses]
        per_trial = sum(ended) / len(ended) if ended else self.max_epochs
        running = [t.trial_id for t in trials if t.trial_id not in self.statuses]
        not_started = max(self.total_trials - len(self.statuses) - len(running), 0)
        remaining = sum(max(self.max_epochs - self.epochs.get(tid, 0), 0) for tid in running)
        return (remaining + not_started * per_trial) * elapsed / self.epochs_run

    def event(self, trials, text: str) -> None:
        counts: dict[str, int] = {}
        for t in trials:
            key = self.statuses.get(t.trial_id) or {"RUNNING": "running", "PAUSED": "paused"}.get(t.status)
            if key:
                counts[key] = counts.get(key, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        best = f" | best {self.best[0]:.2f} dB {self.best[1]}" if self.best else ""
        eta = self.eta_seconds(trials)
        ended = f"{len(self.statuses)}/{self.total_trials} ended, " \
            + ("ETA after the first epoch" if eta is None else f"ETA {_clock(eta)}")
        print(f"[{_clock(self.clock() - self.started, exact=True)}] {text:<48} | {parts} | {ended}{best}",
              flush=True)


def _clock(seconds: float, exact: bool = False) -> str:
    """'  3:07' (minutes:seconds) for elapsed time; '~7 min' / '~2.5 h' for an ETA."""
    if exact:
        s = int(seconds)
        return f"{s // 60:>3}:{s % 60:02d}"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    return f"~{seconds / 60:.0f} min" if seconds < 2 * 3600 else f"~{seconds / 3600:.1f} h"
