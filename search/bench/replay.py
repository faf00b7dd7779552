"""Ray's own schedulers deciding on recorded learning curves, trial by trial as Tune would drive them.

A `Replay` plays Tune's part for a scheduler object (AsyncHyperBandScheduler, search.tune's
SyncHalving): trials start in the grid sampler's order on `slots` parallel slots, the scheduler picks
paused trials to resume (`choose_trial_to_run`) and otherwise the next pending one starts (as Tune
starts pending trials eagerly); each epoch takes its recorded seconds and reports its recorded val/mse
to `on_trial_result`; CONTINUE trains the next epoch, PAUSE frees the slot (the trial resumes later
from that epoch: nothing is trained twice), STOP ends it; a trial stopped while paused goes through
`stop_trial` as in Tune. A trial's curve does not depend on what the scheduler does to others, so
this is what the scheduler would have spent and found, at the cost of recording the curves once.

With each epoch's per-image val MSE (curves files since bench curves kept them), `summarise` also says
how sure the finding is: the grid's configs tied with its winner within noise (reports.noise's paired
bootstrap over the val images), whether the schedule's best is one of them, and its gain against the
winner with its 95% interval. `answer_questions` answers a study's questions (reports.answers) from what
a schedule trained and from the full grid, and says whether each step's direction agrees.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler


@dataclass
class Curve:
    """One config's recorded epochs (early stopping already applied) and the cost weight of an epoch."""
    name: str
    config: dict
    val_mse: list[float]
    seconds: list[float]
    weight: float  # FLOPs per image of the config this curve stands for
    completed: bool = True  # ran to its last epoch (False: early-stopped at the end of val_mse)
    epoch_hours: float = 0.0  # one epoch of the real config it stands for on one GPU (0: not projected)
    images: list[list[float]] | None = None  # each epoch's per-image val MSE (None: not recorded)

    def best_epoch(self, trained: int | None = None) -> int:
        """The 0-based epoch of the lowest val/mse among the first `trained` epochs (all by default)."""
        seen = self.val_mse[:trained] if trained else self.val_mse
        return min(range(len(seen)), key=seen.__getitem__)


@dataclass(eq=False)
class ReplayTrial:
    """What Ray's schedulers read of a trial."""
    trial_id: str
    config: dict
    status: str = Trial.PENDING
    last_result: dict = field(default_factory=dict)
    is_saving: bool = False
    trained: int = 0  # epochs trained
    ended: str = ""  # "finished" or "pruned" once it ended

    def __hash__(self) -> int:
        return hash(self.trial_id)


@dataclass
class Outcome:
    trained: dict[str, int]  # name -> epochs trained
    ended: dict[str, str]  # name -> finished | pruned
    wall_s: float


class Replay:
    def __init__(self, scheduler, curves: list[Curve], slots: int, metric: str = "val/mse"):
        self.scheduler, self.slots, self.metric = scheduler, slots, metric
        self.curves = {c.name: c for c in curves}
        self.trials = [ReplayTrial(c.name, c.config) for c in curves]  # in the sampler's order
        self.running: list[tuple[float, int, str]] = []  # (time its epoch ends, tiebreak, trial id)
        self.by_id = {t.trial_id: t for t in self.trials}
        self.clock, self._order = 0.0, 0

    # -- what Tune's controller offers a scheduler --------------------------------------------
    def get_trials(self) -> list[ReplayTrial]:
        return self.trials

    def stop_trial(self, trial: ReplayTrial) -> None:
        if trial.status in (Trial.PAUSED, Trial.PENDING):
            self.scheduler.on_trial_remove(self, trial)
        self._end(trial, "pruned")

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> Outcome:
        for trial in self.trials:
            self.scheduler.on_trial_add(self, trial)
        while True:
            self._fill_slots()
            if not self.running:
                break
            self.clock, _, trial_id = heapq.heappop(self.running)
            self._epoch_done(self.by_id[trial_id])
        left = [t.trial_id for t in self.trials if not t.ended]
        if left:
            raise RuntimeError(f"the replay stalled with {len(left)} trials neither running nor ended: {left[:3]}")
        return Outcome({t.trial_id: t.trained for t in self.trials}, {t.trial_id: t.ended for t in self.trials},
                       self.clock)

    def _fill_slots(self) -> None:
        while len(self.running) < self.slots:
            trial = self.scheduler.choose_trial_to_run(self)
            if trial is None:
                trial = next((t for t in self.trials if t.status == Trial.PENDING), None)
            if trial is None or trial.status not in (Trial.PENDING, Trial.PAUSED):
                return
            trial.status = Trial.RUNNING
            self._next_epoch(trial)

    def _next_epoch(self, trial: ReplayTrial) -> None:
        heapq.heappush(self.running, (self.clock + self.curves[trial.trial_id].seconds[trial.trained],
                                      self._order, trial.trial_id))
        self._order += 1

    def _epoch_done(self, trial: ReplayTrial) -> None:
        curve = self.curves[trial.trial_id]
        trial.trained += 1
        epoch = trial.trained
        # as the trainer reports: the epoch's value and the best so far (best/*, what a cell's lr choice reads)
        trial.last_result = {"epoch": epoch, self.metric: curve.val_mse[epoch - 1],
                             "best/" + self.metric.replace("/", "_"): min(curve.val_mse[:epoch])}
        decision = self.scheduler.on_trial_result(self, trial, trial.last_result)
        if epoch == len(curve.val_mse) or decision == TrialScheduler.STOP:
            # Its last epoch (or early stop), or the scheduler stopped it: Tune completes it.
            self.scheduler.on_trial_complete(self, trial, trial.last_result)
            self._end(trial, "finished" if epoch == len(curve.val_mse) else "pruned")
        elif decision == TrialScheduler.PAUSE:
            trial.status = Trial.PAUSED
        else:
            self._next_epoch(trial)

    def _end(self, trial: ReplayTrial, how: str) -> None:
        trial.status, trial.ended = Trial.TERMINATED, trial.ended or how


def summarise(curves: list[Curve], outcome: Outcome, tied: dict | None = None) -> dict:
    """What a schedule spent and found, against the full grid (every config to its end). `tied`: the
    grid's tied set (`grid_tied`), when the caller has it already (it does not depend on the schedule)."""
    by_name = {c.name: c for c in curves}
    full_epochs = sum(len(c.val_mse) for c in curves)
    full_compute = sum(len(c.val_mse) * c.weight for c in curves)
    spent = sum(outcome.trained.values())
    compute = sum(outcome.trained[c.name] * c.weight for c in curves)
    grid_best = {c.name: min(c.val_mse) for c in curves}
    winner = min(grid_best, key=grid_best.get)
    seen = {n: min(by_name[n].val_mse[:k]) for n, k in outcome.trained.items() if k}
    finished = [n for n, how in outcome.ended.items() if how == "finished"]
    found = min(finished, key=lambda n: seen[n]) if finished else None
    rank = 1 + sum(1 for n in finished if seen[n] < seen[winner]) if winner in finished else None
    return {"epochs_fraction": spent / full_epochs, "compute_fraction": compute / full_compute,
            "regret": seen[found] / grid_best[winner] - 1 if found else math.inf,
            "grid_best": grid_best[winner], "found_best": seen[found] if found else None,
            "winner": winner, "found": found, "winner_finished": winner in finished,
            "winner_rank_among_finished": rank, "winner_epochs": outcome.trained[winner],
            "finished": len(finished), "trials": len(curves), "wall_s": outcome.wall_s,
            **_projected(curves, outcome), **_noise(curves, outcome, found, tied)}


def grid_tied(curves: list[Curve], metric: str = "val/mse", mode: str = "min") -> dict | None:
    """The full grid's configs tied with its winner within noise, each at its best epoch: {name: Gain of
    the winner over it} (reports.noise.tied_with_best), the winner first; None without per-image values."""
    from reports.noise import tied_with_best
    if not curves or not all(c.images for c in curves):
        return None
    grid_best = {c.name: min(c.val_mse) for c in curves}
    winner = min(grid_best, key=grid_best.get)
    return tied_with_best({c.name: c.images[c.best_epoch()] for c in curves}, winner, metric, mode)


def _noise(curves: list[Curve], outcome: Outcome, found: str | None, tied: dict | None) -> dict:
    """The found best against the grid's tied set and its winner (None each without per-image values)."""
    from reports.noise import gain
    tied = tied if tied is not None else grid_tied(curves)
    if tied is None:
        return {"tied_set": None, "found_in_tied_set": None, "regret_vs_tied": None, "found_vs_winner": None}
    by_name = {c.name: c for c in curves}
    winner = next(iter(tied))
    if found is None:
        return {"tied_set": list(tied), "found_in_tied_set": False, "regret_vs_tied": math.inf,
                "found_vs_winner": None}
    mine = by_name[found]
    value = mine.val_mse[mine.best_epoch(outcome.trained[found])]
    worst_tied = max(min(by_name[n].val_mse) for n in tied)
    inside = found in tied
    images = mine.images[mine.best_epoch(outcome.trained[found])]
    return {"tied_set": list(tied), "found_in_tied_set": inside,
            "regret_vs_tied": 0.0 if inside else max(0.0, value / worst_tied - 1),
            "found_vs_winner": gain(images, by_name[winner].images[by_name[winner].best_epoch()]).as_dict()}


def question_rows(curves: list[Curve], trained: dict[str, int]) -> list[dict]:
    """reports.answers' rows from what was trained: a trial is full-budget when it trained its whole
    curve (every epoch, or up to its early stop); its value is its lowest val/mse over the epochs
    trained, its images the per-image MSE at that epoch."""
    rows = []
    for c in curves:
        k = trained.get(c.name, 0)
        if not k:
            continue
        e = c.best_epoch(k)
        rows.append({**c.config, "name": c.name, "value": c.val_mse[e], "lr": c.config.get("lr", math.nan),
                     "full": k >= len(c.val_mse), "images": c.images[e] if c.images else None})
    return rows


def answer_questions(curves: list[Curve], outcome: Outcome, questions, space: dict,
                     metric: str = "val/mse", mode: str = "min") -> dict:
    """Each question (search.questions.Questions) answered from what the schedule trained and from the
    full grid (every config's whole curve), step by step: the direction each finds ("+", "-", "tied"
    with per-image values, the bare "+?"/"-?" without; "missing" when the schedule left a point out) and
    whether they agree. {"questions": [...], "directions_match": [agreeing steps, grid steps]}."""
    from reports.answers import answer
    space = {k: list(v) for k, v in space.items()}
    found_rows = question_rows(curves, outcome.trained)
    grid_rows = question_rows(curves, {c.name: len(c.val_mse) for c in curves})
    out, agree, total = [], 0, 0
    for q in questions.active:
        found, grid = (answer(q.as_dict(), rows, space, metric, mode) for rows in (found_rows, grid_rows))
        by_step = {(s.along, s.low_value, s.high_value): s for s in found.steps}
        steps = []
        for s in grid.steps:
            mine = by_step.get((s.along, s.low_value, s.high_value))
            direction = mine.direction if mine else "missing"
            steps.append({"along": s.along, "low": s.low_value, "high": s.high_value, "found": direction,
                          "grid": s.direction, "match": direction == s.direction,
                          "found_delta": mine.delta if mine else None, "grid_delta": s.delta,
                          "found_gain": mine.gain.as_dict() if mine and mine.gain else None,
                          "grid_gain": s.gain.as_dict() if s.gain else None})
        chosen = {p.cell: p.name for p in found.points}
        out.append({"name": q.name, "vary": q.vary, "along": q.along, "fixed": dict(q.fixed), "steps": steps,
                    "points": [{"cell": dict(p.cell), "found": chosen.get(p.cell), "grid": p.name}
                               for p in grid.points],
                    "left_out": [dict(cell) for cell in found.left_out]})
        agree += sum(st["match"] for st in steps)
        total += len(steps)
    return {"questions": out, "directions_match": [agree, total]}


def _projected(curves: list[Curve], outcome: Outcome) -> dict:
    """GPU-hours of the real grid the curves stand for: what the schedule trained, and every epoch."""
    if not all(c.epoch_hours for c in curves):
        return {}
    return {"projected_gpu_hours": sum(outcome.trained[c.name] * c.epoch_hours for c in curves),
            "full_grid_gpu_hours": sum(len(c.val_mse) * c.epoch_hours for c in curves)}
