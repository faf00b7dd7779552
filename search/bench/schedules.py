"""`sr-search bench search`: search schedules replayed on recorded learning curves (bench curves), with
Ray's own scheduler objects deciding (search/bench/replay.py), against training the full grid.

    sr-search bench search                                  # the shipped curves, every schedule
    sr-search bench search --curves F.json.gz ... --json OUT
    sr-search bench search --curves F.json.gz.partial --study S.toml --seed N   # a bench curves run so far

A `.partial` file (what a `bench curves` run has finished so far) is replayed on the largest complete
sub-grid it holds, e.g. the depths whose every width and lr is trained; its rows say which (`subgrid`).

For each schedule, curves file (one seed) and number of parallel slots: the share of the grid's
epochs trained (`epochs_fraction`), the share of its compute (`compute_fraction`: epochs weighted by
each config's FLOPs per image; for the residual proxy, by the real residual config it stands for),
the regret of the best finished trial against the grid's best val/mse, whether the grid's winner
finished (`winner_finished`) and where it ranked, and the wall time. Schedules compared: today's
asynchronous ASHA, synchronous successive halving (search.tune.scheduler.SyncHalving, on Ray's
HyperBandScheduler) over several first rungs and reduction factors, and its insured variant that also
keeps the best trial of each depth at every rung (wide nets start slower: their curves cross).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from importlib import resources
from pathlib import Path

from search.bench.output import envelope, table, write_json

SLOTS = (1, 4, 8)
HALVING = [(r0, eta) for r0 in (1, 3, 5, 9) for eta in (2, 3, 4)]  # (first rung, reduction factor)


@dataclasses.dataclass(frozen=True)
class Schedule:
    name: str
    kind: str  # "asha" | "halving"
    first_rung: int
    reduction_factor: int
    insure_by: str = ""
    questions: object = None  # search.questions.Questions carried to the full budget, or None

    def make(self, n_trials: int, max_epochs: int):
        if self.kind == "asha":
            from ray.tune.schedulers import AsyncHyperBandScheduler
            return AsyncHyperBandScheduler(time_attr="epoch", metric="val/mse", mode="min", max_t=max_epochs,
                                           grace_period=self.first_rung, reduction_factor=self.reduction_factor,
                                           brackets=1, stop_last_trials=False)
        from search.tune.scheduler import RungRecord, SyncHalving
        return SyncHalving(RungRecord(), n_trials, max_epochs, self.first_rung, self.reduction_factor,
                           insure_by=self.insure_by, questions=self.questions)


def schedules(study, max_epochs: int) -> list[Schedule]:
    """ASHA at the study's first rung and reduction factor, the study's own halving (when it halves),
    then halving over HALVING (first rungs below max_epochs), plain and insured by depth."""
    g, rf, insure = study.pruner.grace_period, study.pruner.reduction_factor, study.pruner.insure
    out = [Schedule(f"asha g{g} rf{rf}", "asha", g, rf)]
    if study.schedule == "halving":  # the study's own schedule, as its file sets it
        out.append(Schedule(f"study: halving r{g} eta{rf}" + (f" +best/{insure}" if insure else ""), "halving",
                            g, rf, insure))
    for r0, eta in HALVING:
        if r0 < max_epochs:
            out.append(Schedule(f"halving r{r0} eta{eta}", "halving", r0, eta))
            out.append(Schedule(f"halving r{r0} eta{eta} +best/depth", "halving", r0, eta, "blocks"))
    return out


def shipped_curves() -> list[Path]:
    folder = resources.files("search.bench").joinpath("curves")
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".json.gz"))


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--curves", type=Path, nargs="+", help="curves files of bench curves (default: the shipped ones)")
    p.add_argument("--slots", default=",".join(map(str, SLOTS)), help="parallel slots to replay with (default 1,4,8)")
    p.add_argument("--only", help="comma-separated schedule names (default: all)")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    p.add_argument("--study", help="for a .partial curves file: the grid study it is being recorded from")
    p.add_argument("--seed", type=int, default=0, help="for a .partial curves file: its seed (default 0)")


def _run(args) -> int:
    slots = [int(s) for s in args.slots.split(",")]
    files = args.curves or shipped_curves()
    if not files or min(slots) < 1:
        raise ValueError(f"need curves files and slots >= 1, got {files=} {slots=}")
    recorded = [read_curves(path, args.study, args.seed) for path in files]  # every file checked first
    rows = []
    for path, curves in zip(files, recorded):
        rows += replay_file(path, slots, set(args.only.split(",")) if args.only else None, curves)
    result = {**envelope("search", "cpu", sys.argv), "rows": rows, "summary": summary(rows)}
    print(format_rows(result["summary"]))
    if args.json:
        write_json(args.json, result)
    return 0


def read_curves(path: Path, study: str | None, seed: int) -> dict:
    """A curves file, or a .partial one as the complete sub-grid it holds (which needs its study)."""
    from search.bench.curves import load_curves, load_partial
    from search.errors import StudyError
    if Path(path).suffix != ".partial":
        return load_curves(path)
    if not study:
        raise StudyError(f"{path}: a .partial curves file needs --study, the grid study it is recorded from")
    recorded = load_partial(path, study, seed)
    print(f"{Path(path).name}: {recorded['recorded_configs']} of {recorded['grid_configs']} configs recorded; "
          f"replaying the complete sub-grid of {len(recorded['configs'])}: "
          + ", ".join(f"{k} {v}" for k, v in recorded["subgrid"].items()), flush=True)
    return recorded


def replay_file(path: Path, slots: list[int], only: set[str] | None, recorded: dict | None = None) -> list[dict]:
    """Every schedule on one curves file, at each slot count: one row each."""
    from search.bench.curves import load_curves
    from search.bench.replay import Replay, summarise
    recorded = recorded or load_curves(path)
    study, curves = curve_set(recorded)
    extra = {"subgrid": recorded["subgrid"], "grid_configs": recorded["grid_configs"]} if "subgrid" in recorded else {}
    rows = []
    for schedule in schedules(study, recorded["epochs"]):
        if only and schedule.name not in only:
            continue
        for n_slots in slots:
            outcome = Replay(schedule.make(len(curves), recorded["epochs"]), curves, n_slots).run()
            rows.append({"curves": Path(path).name, "study": recorded["study"], "seed": recorded["seed"],
                         "schedule": schedule.name, "slots": n_slots, **summarise(curves, outcome), **extra})
        print(f"{Path(path).name} seed {recorded['seed']}: {schedule.name}: "
              f"compute {rows[-1]['compute_fraction']:.1%}, regret {rows[-1]['regret']:.2%}", flush=True)
    return rows


def curve_set(recorded: dict):
    """(the recorded study, its curves in the grid sampler's order, each weighted by the FLOPs per image
    of the config it stands for: the real residual config for the residual proxy, its own otherwise).
    With a `subgrid` (a partial file) the study is that sub-grid, and the curves are its configs."""
    from search.study import load_study, parse_study
    full = parse_study(recorded["study_text"], recorded["study"], recorded["study"])
    full = dataclasses.replace(full, search=dataclasses.replace(full.search, seed=recorded["seed"]))
    study = full
    if "subgrid" in recorded:
        study = dataclasses.replace(full, space={**full.space, **{k: tuple(v) for k, v in recorded["subgrid"].items()}})
    real = load_study("residual") if recorded["study"] == "residual-proxy" else None
    curves = []
    for name in grid_order(study):
        c = recorded["configs"][name]
        curves.append(_curve(name, c, full, real))
    return study, curves


def _curve(name: str, c: dict, full, real):
    """One config's curve; the proxy's (depth, width) index in the full grid picks the real config."""
    from search.bench.projection import epoch_hours
    from search.bench.replay import Curve
    from sr_core.models import flops_per_image
    weight, hours = c["flops_per_image"], 0.0
    if real is not None:
        i, j = full.space["blocks"].index(c["blocks"]), full.space["channels"].index(c["channels"])
        weight = flops_per_image("residual", real.space["blocks"][i], real.space["channels"][j])
        hours = epoch_hours("residual", real.space["blocks"][i], real.space["channels"][j])
    config = {"arch": c["arch"], "blocks": c["blocks"], "channels": c["channels"], "lr": c["lr"]}
    return Curve(name, config, c["val_mse"], c["seconds"], weight, c["status"] == "completed", hours)


def grid_order(study) -> list[str]:
    """The run names in the order Optuna's grid sampler hands them out for the study's seed."""
    import optuna

    from search.tracking import run_name
    from search.tune.searcher import make_sampler, optuna_space
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampled = optuna.create_study(sampler=make_sampler(study))
    names = []
    for i in range(study.num_trials):
        trial = sampled.ask(optuna_space(study))
        names.append(run_name(trial.params))
        if i < study.num_trials - 1:  # the grid sampler stops the study after the last: not outside optimize()
            sampled.tell(trial, 0.0)
    return names


def summary(rows: list[dict]) -> list[dict]:
    """Per study and schedule, over seeds (and slots for what slots do not change): means and worst."""
    out = []
    keys = sorted({(r["study"], r["schedule"]) for r in rows}, key=lambda k: (k[0], _order(k[1])))
    for study, name in keys:
        mine = [r for r in rows if (r["study"], r["schedule"]) == (study, name)]
        one_slot = [r for r in mine if r["slots"] == min(x["slots"] for x in mine)]
        row = {"study": study, "schedule": name, "seeds": len({r["seed"] for r in mine})}
        for key in ("compute_fraction", "epochs_fraction", "regret"):
            values = [r[key] for r in one_slot]
            row[key], row[f"{key}_max"] = statistics.mean(values), max(values)
        row["winner_finished"] = sum(r["winner_finished"] for r in one_slot) / len(one_slot)
        if all("projected_gpu_hours" in r for r in one_slot):
            row["projected_gpu_hours"] = statistics.mean(r["projected_gpu_hours"] for r in one_slot)
            row["full_grid_gpu_hours"] = statistics.mean(r["full_grid_gpu_hours"] for r in one_slot)
        for n_slots in sorted({r["slots"] for r in mine}):
            row[f"wall_s_{n_slots}"] = statistics.mean(r["wall_s"] for r in mine if r["slots"] == n_slots)
        out.append(row)
    return out


def _order(name: str) -> tuple:
    return (not name.startswith("asha"), name)


def format_rows(rows: list[dict]) -> str:
    walls = sorted({int(k.split("_")[-1]) for r in rows for k in r if k.startswith("wall_s_")})
    columns = [("study", "study", ""), ("schedule", "schedule", ""), ("seeds", "seeds", "d"),
               ("compute_fraction", "compute", ".1%"), ("compute_fraction_max", "max", ".1%"),
               ("epochs_fraction", "epochs", ".1%"), ("regret", "regret", ".2%"), ("regret_max", "max", ".2%"),
               ("winner_finished", "winner finished", ".0%")]
    columns += [(f"wall_s_{s}", f"wall s at {s}", ",.0f") for s in walls]
    text = "bench search: schedules replayed on recorded curves (compute: FLOP-weighted share of the full grid)\n\n" \
        + table(rows, columns)
    projected = [r for r in rows if "projected_gpu_hours" in r]
    if projected:
        text += "\n\nprojected to the real residual grid on one H100 (search/bench/projection.py: a throughput model " \
            "anchored on b24 c612 and b8 c64 measured there; 7000/1250 images per epoch)\n\n" + table(projected, [
                ("study", "study", ""), ("schedule", "schedule", ""), ("projected_gpu_hours", "GPU-hours", ",.1f"),
                ("full_grid_gpu_hours", "full grid", ",.1f")])
    return text


SUBCOMMAND = ("search schedules replayed on recorded learning curves: compute, regret, the winner",
              _arguments, _run)
