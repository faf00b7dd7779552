"""Cost estimate of a study: FLOPs from `flops_per_image`, the device's throughput as measured by
`sr_core.throughput.measure_device_flops` (in a Ray task placed like a trial, search.run.cluster).

The schedule decides how much of the grid's compute a study spends: `schedule_epochs` counts how many
trials stop at each rung (synchronous halving keeps ceil(n / reduction_factor) at each, plus the best
of each value of `insure`; ASHA promotes the same share in expectation) and the estimate is that many
epochs of the mean config, plus the [questions]' configs carried to the full budget beyond what the
schedule would train them (`question_flops`, shown apart), plus the [final] step's epochs of the
costliest config, plus the scorings of the full-size val ([study].full_val: every full_val_every-th
epoch a trial trains and its last, `full_val_scorings`) priced by pixels. What the study
then spends is logged beside it (actual/device_hours), so the report shows estimate against actual.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from search.rungs import question_cost, schedule_epochs
from search.study import Study
from sr_core.models import flops_per_image
from sr_core.sizes import LR_SIZE

# For a CPU-only machine estimating a GPU study: an assumed effective training throughput of a
# current datacenter GPU on these convnets (bf16, ~10% of an H100's dense peak). Labelled as assumed
# wherever it is printed; measure the real one with `sr-search bench train` and pass --tflops.
ASSUMED_GPU_TFLOPS = 100.0


@dataclass(frozen=True)
class Estimate:
    grid_size: int | None
    trials: int
    flops_total: float  # every trial running all its epochs (an upper bound: pruning cuts it)
    device: str
    device_flops: float  # effective training FLOP/s of one trial on this device
    concurrency: int
    mean_flops_per_image: float
    epochs_fraction: float = 1.0  # of every trial's epochs, what the schedule trains (schedule_epochs)
    schedule: str = "none"
    final_flops: float = 0.0  # the [final] step: its epochs of the costliest config (an upper bound)
    audit_flops: float = 0.0  # the pruning audit: its trials' epochs after the rung each was stopped at
    audit_trials: int = 0
    questions_flops: float = 0.0  # the questions' configs carried past where the schedule stops them
    question_cells: int = 0
    # The measured cost model's prices (search.run.cost_model), in device-seconds: "search", "questions",
    # "audit", "final", and "orchestration" (wall seconds of Tune starts, trial starts and resumes).
    # Empty on the FLOP path (--tflops: a target GPU that is not here to time).
    seconds: dict = field(default_factory=dict)
    probe_seconds: float = 0.0  # what timing the shapes cost, before the study
    probe_shapes: int = 0
    speedup: float = 1.0  # the final step's threads against a trial's (the cost model's)
    epoch_seconds: dict = field(default_factory=dict)  # run name -> the model's seconds for one of its epochs
    full_val_flops: float = 0.0  # the full-size val's forwards, every scoring of every trial
    full_val_scorings: int = 0

    @property
    def flops_expected(self) -> float:
        return (self.flops_total * self.epochs_fraction + self.questions_flops + self.audit_flops + self.final_flops
                + self.full_val_flops)

    @property
    def device_hours(self) -> float:
        if self.seconds:
            return sum(v for k, v in self.seconds.items() if k != "orchestration") / 3600
        return self.flops_expected / self.device_flops / 3600

    @property
    def wall_hours(self) -> float:
        if self.seconds:
            s, conc = self.seconds, max(self.concurrency, 1)
            return ((s["search"] + s["questions"] + s.get("full_val", 0.0)) / conc
                    + s["audit"] / max(min(conc, self.audit_trials), 1)
                    + s["final"] + s["orchestration"]) / 3600
        search = (self.flops_total * self.epochs_fraction + self.questions_flops + self.full_val_flops) / max(
            self.concurrency, 1)
        audit = self.audit_flops / max(min(self.concurrency, self.audit_trials), 1)
        return (search + audit + self.final_flops) / self.device_flops / 3600

    def as_metrics(self) -> dict[str, float]:
        return {"estimate/grid_size": float(self.grid_size or 0), "estimate/trials": float(self.trials),
                "estimate/flops_total": self.flops_total, "estimate/device_hours": self.device_hours,
                "estimate/wall_hours": self.wall_hours, "estimate/device_tflops": self.device_flops / 1e12,
                "estimate/epochs_fraction": self.epochs_fraction, "estimate/flops_expected": self.flops_expected,
                "estimate/questions_flops": self.questions_flops, "estimate/probe_seconds": self.probe_seconds,
                "estimate/full_val_scorings": float(self.full_val_scorings),
                **{f"estimate/{k}_seconds": v for k, v in self.seconds.items()}}

    def _questions_line(self) -> str:
        if self.seconds:
            share = self.seconds["questions"] / max(self.device_hours * 3600, 1e-9)
            more = f"{self.seconds['questions'] / 3600:,.3g} device-hours more than the schedule alone"
        else:
            share = self.questions_flops / max(self.flops_expected, 1e-9)
            more = f"{self.questions_flops / 1e15:,.2f} PFLOP more than the schedule alone"
        return (f"questions    : {self.question_cells} points of the study's questions carried to the full budget: "
                f"{more} ({share:.0%} of this estimate; --no-questions leaves them out)")

    def _full_val_line(self) -> str:
        if self.seconds:
            cost = f"{self.seconds['full_val'] / 3600:,.3g} device-hours"
            share = self.seconds["full_val"] / max(self.device_hours * 3600, 1e-9)
        else:
            cost, share = f"{self.full_val_flops / 1e15:,.2f} PFLOP", self.full_val_flops / max(self.flops_expected, 1e-9)
        return (f"full val     : {self.full_val_scorings} scorings of the full-size val folder (every "
                f"[study].full_val_every epochs and each trial's last): {cost} ({share:.0%} of this estimate)")

    def _model_line(self) -> str:
        parts = ", ".join(f"{k} {v / 3600:.3g} h" for k, v in self.seconds.items() if k != "orchestration")
        return (f"cost model   : real steps of {self.probe_shapes} shapes timed on the trials' device in "
                f"{self.probe_seconds:.1f} s; device time by part: {parts}; "
                f"plus {self.seconds['orchestration'] / 60:.1f} min of wall for Tune, trial starts and resumes")

    def lines(self) -> list[str]:
        grid = f"{self.grid_size} configs" if self.grid_size else "continuous space"
        unit = "trial-slot-hours" if self.device == "cpu" else "GPU-hours"
        lines = [
            f"search space : {grid}; {self.trials} trials",
            f"compute      : {self.flops_total / 1e15:,.2f} PFLOP if no trial is pruned "
            f"(mean {self.mean_flops_per_image / 1e9:,.2f} GFLOP forward per image); the {self.schedule} "
            f"schedule trains {'at least' if self.schedule == 'asha' else 'about'} {self.epochs_fraction:.0%} "
            "of those epochs" + (" (ASHA also promotes early arrivals)" if self.schedule == "asha" else "")
            + (f", the audit of {self.audit_trials} pruned trial(s) {self.audit_flops / 1e15:,.2f} PFLOP more"
               if self.audit_trials else "")
            + (f", the final step {self.final_flops / 1e15:,.2f} PFLOP more" if self.final_flops else ""),
            *([self._questions_line()] if self.question_cells else []),
            *([self._full_val_line()] if self.full_val_scorings else []),
            f"device       : {self.device}, {self.device_flops / 1e12:,.3f} TFLOP/s effective",
            *([self._model_line()] if self.seconds else []),
            f"estimate     : {self.device_hours:,.2f} {unit}; {self.wall_hours:,.2f} h wall "
            f"at {self.concurrency} trial(s) at a time"
            + (" (an upper bound: trials that stop early on patience train less)" if self.seconds else ""),
        ]
        if self.device == "cpu":
            gpu_hours = self.flops_expected / (ASSUMED_GPU_TFLOPS * 1e12) / 3600
            lines.append(f"on a GPU     : {gpu_hours:,.2f} GPU-hours at an assumed {ASSUMED_GPU_TFLOPS:g} TFLOP/s "
                         "effective (measure yours: sr-search bench train; then --tflops)")
        return lines


def trial_flops(arch: str, blocks: int, channels: int, epochs: int, train_images: int,
                val_images: int, params=()) -> float:
    """Training is ~3x the forward (forward + backward); evaluation is one forward."""
    per_image = flops_per_image(arch, blocks, channels, params)
    return float(epochs * (3 * per_image * train_images + per_image * val_images))


def _cost_configs(study: Study) -> list[tuple]:
    """(arch, blocks, channels, params) of every trial for a grid; the equally weighted choices otherwise."""
    space = study.space
    combos = study.nets()
    if study.search.sampler == "grid":
        repeats = math.prod(len(v) for k, v in space.items() if k not in ("arch", "blocks", "channels"))
        return combos * repeats
    return combos


#: Adam steps the demo's nets take to leave the bicubic plateau (they start as exact bicubic): 100 to 200
#: measured (studies/demo.toml). A trial of fewer steps than the top of that range barely leaves it.
LEAVE_BICUBIC_STEPS = 200


def epoch_images(study: Study, train_images: int) -> int:
    """The images of one epoch: [train] epoch_samples, any number (0: the train set, as the trainer does)."""
    return study.train.epoch_samples or train_images


def short_epochs(study: Study, train_images: int) -> str:
    """A warning when a trial's whole schedule is fewer steps than a net needs to leave bicubic, with
    the epoch_samples that would give it enough; "" when it is long enough."""
    per_epoch = epoch_images(study, train_images)
    steps = study.train.epochs * -(-per_epoch // study.train.batch_size)
    if steps >= LEAVE_BICUBIC_STEPS:
        return ""
    needed = -(-LEAVE_BICUBIC_STEPS // study.train.epochs) * study.train.batch_size
    return (f"a trial trains {steps} steps ({study.train.epochs} epochs of {per_epoch} images, batch "
            f"{study.train.batch_size}); nets leave bicubic after {LEAVE_BICUBIC_STEPS // 2}-{LEAVE_BICUBIC_STEPS} "
            f"steps, so trials will tie with bicubic and with each other. Set epoch_samples = {needed} or more in "
            "[train] (random crops can draw any number per epoch), or train more epochs.")


#: Orchestration wall seconds (BENCHMARKS.md, bench overhead on this 2-core machine: ~1 s per trial):
#: starting a Tune experiment (search, audit, final), starting a trial, pausing and resuming one.
EXPERIMENT_S, TRIAL_START_S, RESUME_S = 5.0, 1.0, 1.0


def scored_epochs(trained: int, max_epochs: int, every: int) -> int:
    """How many of a trial's first `trained` epochs score the full-size val (sr_core.full_val.FullVal.due)."""
    return trained // every + (1 if trained == max_epochs and max_epochs % every else 0)


def full_val_scorings(study: Study, steps: list[tuple[int, int]]) -> int:
    """Scorings of the full-size val in the study: the schedule's trials (each up to the epoch it
    stops at), the audit's (from its rung to the end) and the final step's; 0 without a folder."""
    if not study.full_val:
        return 0
    every, epochs = study.full_val_every, study.train.epochs
    search = sum(k * scored_epochs(e, epochs, every) for k, e in steps)
    audited, audit_left = audit_epochs(study, steps)
    audit = round(audit_left / every) + audited if audited else 0
    final = scored_epochs(study.final.epochs, study.final.epochs, every) if study.final.epochs else 0
    return search + audit + final


def price(study: Study, model, train_images: int, val_images: int, concurrency: int,
          full_val_pixels: tuple[int, int] = (0, 0)) -> dict:
    """Device-seconds by part, from the measured cost model: the schedule's epochs at the mean config's
    epoch (which configs survive a rung is not known in advance), the questions' configs priced one by one,
    the audit's epochs, the final step at the mean config on its threads; and the orchestration's wall."""
    per_epoch = epoch_images(study, train_images)
    configs = _cost_configs(study)
    epoch = {c: model.epoch_s(*c[:3], per_epoch, val_images, c[3]) for c in set(configs)}
    mean = sum(epoch[c] for c in configs) / len(configs)
    steps = schedule_epochs(study)
    search = sum(k * e for k, e in steps) * mean
    audited, audit_left = audit_epochs(study, steps)
    fraction = sum(k * e for k, e in steps) / max(study.num_trials * study.train.epochs, 1)
    questions = _question_seconds(study, epoch, fraction)
    final = study.final.epochs * mean / max(model.speedup, 1e-9)
    resumes = sum(k for k, e in steps if e > study.rungs()[0]) if study.schedule == "halving" and study.rungs() else 0
    experiments = 1 + (1 if audited else 0) + (1 if study.final.epochs else 0)
    orchestration = (experiments * EXPERIMENT_S + (study.num_trials + audited) * TRIAL_START_S / max(concurrency, 1)
                     + resumes * RESUME_S / max(concurrency, 1))
    full_val = sum(model.full_val_s(*c, *full_val_pixels) for c in configs) / len(configs)
    return {"search": search, "questions": questions, "audit": audit_left * mean, "final": final,
            "full_val": full_val_scorings(study, steps) * full_val, "orchestration": orchestration}


def _question_seconds(study: Study, epoch: dict, fraction: float) -> float:
    """question_flops' count in seconds, by each net's measured epoch."""
    return question_cost(study, lambda c, n: epoch[study.trial_config(c).net] * n, fraction)[1]


def estimate_study(study: Study, train_images: int, val_images: int, device: str,
                   device_flops: float, concurrency: int, model=None,
                   full_val_pixels: tuple[int, int] = (0, 0)) -> Estimate:
    """The estimate: priced by the measured cost model when one is given (`price`), else by FLOPs at
    the device's measured rate on one reference net (--tflops: a target GPU that is not here).
    `full_val_pixels`: the full-size val folder's LR and HR pixels in all ((0, 0) without one)."""
    per_epoch = epoch_images(study, train_images)
    configs = _cost_configs(study)
    mean = sum(trial_flops(a, b, c, study.train.epochs, per_epoch, val_images, p)
               for a, b, c, p in configs) / len(configs)
    mean_fpi = sum(flops_per_image(*net) for net in configs) / len(configs)
    steps = schedule_epochs(study)
    fraction = sum(k * e for k, e in steps) / max(study.num_trials * study.train.epochs, 1)
    final = max((trial_flops(a, b, c, study.final.epochs, per_epoch, val_images, p) for a, b, c, p in configs),
                default=0.0) if study.final.epochs else 0.0
    audited, audit_left = audit_epochs(study, steps)
    cells, questions = question_flops(study, per_epoch, val_images, fraction)
    scorings = full_val_scorings(study, steps)
    return Estimate(grid_size=study.grid_size, trials=study.num_trials, flops_total=mean * study.num_trials,
                    device=device, device_flops=device_flops, concurrency=concurrency,
                    mean_flops_per_image=mean_fpi, epochs_fraction=fraction, schedule=study.schedule,
                    final_flops=final, audit_flops=mean / max(study.train.epochs, 1) * audit_left,
                    audit_trials=audited, questions_flops=questions, question_cells=cells,
                    seconds=price(study, model, train_images, val_images, concurrency, full_val_pixels) if model else {},
                    probe_seconds=model.probe_seconds if model else 0.0, probe_shapes=len(model.rows) if model else 0,
                    epoch_seconds=_epoch_seconds(study, model, train_images, val_images) if model else {},
                    speedup=model.speedup if model else 1.0, full_val_scorings=scorings,
                    full_val_flops=scorings * mean_fpi * full_val_pixels[0] / LR_SIZE ** 2)


def _epoch_seconds(study: Study, model, train_images: int, val_images: int) -> dict[str, float]:
    """Each grid config's predicted epoch (what `bench estimate` sets against the trial's own)."""
    if study.grid_size is None:
        return {}
    per_epoch = epoch_images(study, train_images)
    configs = [study.trial_config(c) for c in study.grid()]
    return {t.run_name: model.epoch_s(*t.net[:3], per_epoch, val_images, t.net[3]) for t in configs}


def as_json(estimate: Estimate) -> dict:
    """What the study run keeps of its estimate (ESTIMATE_ARTIFACT): the parts, the wall, each config's epoch."""
    return {"device": estimate.device, "concurrency": estimate.concurrency, "device_hours": estimate.device_hours,
            "wall_hours": estimate.wall_hours, "seconds": estimate.seconds, "probe_seconds": estimate.probe_seconds,
            "speedup": estimate.speedup, "epoch_seconds": estimate.epoch_seconds}


def question_flops(study: Study, per_epoch: int, val_images: int, fraction: float) -> tuple[int, float]:
    """(cells, FLOPs) the [questions] add beyond the schedule (search.rungs.question_cost)."""
    def flops(c: dict, n: int) -> float:
        a, b, ch, p = study.trial_config(c).net
        return trial_flops(a, b, ch, n, per_epoch, val_images, p)
    return question_cost(study, flops, fraction)


def audit_epochs(study: Study, steps: list[tuple[int, int]]) -> tuple[int, float]:
    """(trials, epochs) the pruning audit trains: [pruner].audit of the pruned trials, each from the
    rung it was stopped at to the end; the picks spread over the ranking, so the mean of what is left."""
    pruned = [(k, e) for k, e in steps if e < study.train.epochs]
    n = sum(k for k, _ in pruned)
    audited = min(study.pruner.audit, n)
    if not audited:
        return 0, 0.0
    left = sum(k * (study.train.epochs - e) for k, e in pruned) / n
    return audited, audited * left
