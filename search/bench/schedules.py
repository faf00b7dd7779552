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


def schedules(study, max_epochs: int, own=None) -> list[Schedule]:
    """ASHA at the study's first rung and reduction factor; the study's own halving (when it halves),
    without and with its [questions] carried to the full budget; then halving over HALVING (first rungs
    below max_epochs), plain and insured by depth. `own` is the study whose [pruner] and [questions]
    the "study:" rows replay (`own_study`: the bundled file's, the residual proxy's from residual.toml;
    `study` by default); when the recorded study halves otherwise, that schedule is kept as "recorded
    study: ..."."""
    g, rf = study.pruner.grace_period, study.pruner.reduction_factor
    out = [Schedule(f"asha g{g} rf{rf}", "asha", g, rf)]
    own = own or study
    if own.schedule == "halving":  # the study's own schedule, as its file sets it
        out += study_schedules(own, max_epochs)
    if own is not study and study.schedule == "halving" and _halving(study) != _halving(own):
        plain = study_schedules(dataclasses.replace(study, questions=study.questions.off()), max_epochs)
        out += [dataclasses.replace(s, name=f"recorded {s.name}") for s in plain]
    for r0, eta in HALVING:
        if r0 < max_epochs:
            out.append(Schedule(f"halving r{r0} eta{eta}", "halving", r0, eta))
            out.append(Schedule(f"halving r{r0} eta{eta} +best/depth", "halving", r0, eta, "blocks"))
    return out


def _halving(study) -> tuple:
    return study.pruner.grace_period, study.pruner.reduction_factor, study.pruner.insure


def study_schedules(study, max_epochs: int) -> list[Schedule]:
    """The study's halving as its file sets it, then (with active [questions]) the same carrying the
    questions' cells to the full budget, named by the rung where each point's lr is chosen:
    "study: halving r3 eta4 +best/blocks" and "study: halving r3 eta4 +best/blocks +questions@12"."""
    from search.questions import choose_epoch
    from search.rungs import halving_rungs
    g, rf, insure = _halving(study)
    name = f"study: halving r{g} eta{rf}" + (f" +best/{insure}" if insure else "")
    out = [Schedule(name, "halving", g, rf, insure)]
    if study.questions.active and g < max_epochs:
        at = choose_epoch(study.questions, halving_rungs(g, rf, max_epochs))
        out.append(Schedule(f"{name} +questions@{at}", "halving", g, rf, insure, study.questions))
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
    from search.bench.lr_choice import format_lr_choice, lr_choice
    choices = [lr_choice(path, rec) for path, rec in zip(files, recorded)]
    result = {**envelope("search", "cpu", sys.argv), "rows": rows, "summary": summary(rows),
              "lr_choice": [c for c in choices if c]}
    print(format_rows(result["summary"]))
    if result["lr_choice"]:
        print("\n" + format_lr_choice(result["lr_choice"]))
    if any("questions" in r for r in rows):
        print("\n" + format_questions(rows))
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
    """Every schedule on one curves file, at each slot count: one row each. A schedule carrying
    questions also answers them (`questions`, `directions_match`: replay.answer_questions) and says
    what they cost: `questions_compute_fraction`, its compute share minus that of the same schedule
    without them."""
    from search.bench.curves import load_curves
    from search.bench.replay import Replay, answer_questions, grid_tied, summarise
    recorded = recorded or load_curves(path)
    study, curves = curve_set(recorded)
    own = own_study(recorded, study)
    extra = {"subgrid": recorded["subgrid"], "grid_configs": recorded["grid_configs"]} if "subgrid" in recorded else {}
    tied = grid_tied(curves)  # the grid's: the same for every schedule
    replayed: dict[tuple, object] = {}  # (schedule without its name and questions, slots) -> its outcome
    rows = []
    for schedule in schedules(study, recorded["epochs"], own):
        if only and schedule.name not in only:
            continue
        for n_slots in slots:
            outcome = Replay(schedule.make(len(curves), recorded["epochs"]), curves, n_slots).run()
            row = {"curves": Path(path).name, "study": recorded["study"], "seed": recorded["seed"],
                   "schedule": schedule.name, "slots": n_slots, **summarise(curves, outcome, tied), **extra}
            plain = (dataclasses.replace(schedule, name="", questions=None), n_slots)
            if schedule.questions is not None and schedule.questions.active:
                if plain not in replayed:
                    replayed[plain] = Replay(plain[0].make(len(curves), recorded["epochs"]), curves, n_slots).run()
                row["questions_compute_fraction"] = \
                    row["compute_fraction"] - summarise(curves, replayed[plain], tied)["compute_fraction"]
                row.update(answer_questions(curves, outcome, schedule.questions, study.space))
            else:
                replayed[plain] = outcome
            rows.append(row)
        last = rows[-1]
        asked = (f", questions +{last['questions_compute_fraction']:.1%}, directions "
                 f"{last['directions_match'][0]}/{last['directions_match'][1]}" if "directions_match" in last else "")
        print(f"{Path(path).name} seed {recorded['seed']}: {schedule.name}: "
              f"compute {last['compute_fraction']:.1%}, regret {last['regret']:.2%}{asked}", flush=True)
    return rows


PROXY, PROXIED = "residual-proxy", "residual"  # the CPU proxy's curves stand for the residual grid


def _recorded_study(recorded: dict):
    """The study the curves were recorded from (its file's text), at their seed, over its whole grid."""
    from search.study import parse_study
    full = parse_study(recorded["study_text"], recorded["study"], recorded["study"])
    return dataclasses.replace(full, search=dataclasses.replace(full.search, seed=recorded["seed"]))


def curve_set(recorded: dict):
    """(the recorded study, its curves in the grid sampler's order, each weighted by the FLOPs per image
    of the config it stands for: the real residual config for the residual proxy, its own otherwise).
    With a `subgrid` (a partial file) the study is that sub-grid, and the curves are its configs."""
    from search.study import load_study
    full = study = _recorded_study(recorded)
    if "subgrid" in recorded:
        study = dataclasses.replace(full, space={**full.space, **{k: tuple(v) for k, v in recorded["subgrid"].items()}})
    real = load_study(PROXIED) if recorded["study"] == PROXY else None
    curves = []
    for name in grid_order(study):
        c = recorded["configs"][name]
        curves.append(_curve(name, c, full, real))
    return study, curves


def own_study(recorded: dict, study):
    """`study` (curve_set's) with the [pruner] and [questions] its "study:" schedules replay: for the
    residual proxy, residual.toml's, its questions mapped onto the proxy's space by index (proxy config
    (i, j, k) stands for the real one with the same indices: blocks 24 -> 6, channels 712 -> 44); for
    the curves of a bundled study (demo), the bundled file's as it is now; otherwise the recorded file's."""
    from search.study import bundled_studies, load_study
    name = recorded["study"]
    if name == PROXY:
        real = load_study(PROXIED)
        questions = map_questions(real.questions, real.space, _recorded_study(recorded).space)
        return dataclasses.replace(study, pruner=real.pruner, questions=questions)
    if name in bundled_studies():
        bundled = load_study(name)
        return dataclasses.replace(study, pruner=bundled.pruner, questions=bundled.questions)
    return study


def map_questions(questions, real_space: dict, proxy_space: dict):
    """`questions` of the real study with each `fixed` value replaced by the proxy's value at the same
    index of [space] (the proxy's config (i, j, k) stands for the real (i, j, k))."""
    def mapped(key, value):
        return proxy_space[key][list(real_space[key]).index(value)] if len(real_space[key]) > 1 else \
            proxy_space[key][0]
    items = tuple(dataclasses.replace(q, fixed=tuple((k, mapped(k, v)) for k, v in q.fixed)) for q in questions.items)
    return dataclasses.replace(questions, items=items)


def _curve(name: str, c: dict, full, real):
    """One config's curve; the proxy's (depth, width) index in the full grid picks the real config."""
    from search.bench.curves import image_mse
    from search.bench.projection import epoch_hours
    from search.bench.replay import Curve
    from sr_core.models import flops_per_image
    weight, hours = c["flops_per_image"], 0.0
    if real is not None:
        i, j = full.space["blocks"].index(c["blocks"]), full.space["channels"].index(c["channels"])
        weight = flops_per_image("residual", real.space["blocks"][i], real.space["channels"][j])
        hours = epoch_hours("residual", real.space["blocks"][i], real.space["channels"][j])
    config = {"arch": c["arch"], "blocks": c["blocks"], "channels": c["channels"], "lr": c["lr"]}
    epochs = len(c["val_mse"])
    images = [image_mse(c, e) for e in range(1, epochs + 1)] if len(c.get("val_mse_images") or ()) == epochs else None
    return Curve(name, config, c["val_mse"], c["seconds"], weight, c["status"] == "completed", hours, images)


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
        row.update(_noise_summary(one_slot))
        if all("directions_match" in r for r in one_slot):
            row["questions_compute_fraction"] = statistics.mean(r["questions_compute_fraction"] for r in one_slot)
            row["questions_compute_fraction_max"] = max(r["questions_compute_fraction"] for r in one_slot)
            row["directions_match"] = [sum(r["directions_match"][i] for r in one_slot) for i in (0, 1)]
        out.append(row)
    return out


def _noise_summary(rows: list[dict]) -> dict:
    """Over seeds, where every seed's curves kept per-image values: the tied set's mean size, the share
    of seeds whose found best is in it, the regret against it and the found best's gain on the winner
    (mean dB, and the lowest end of its intervals); None each otherwise."""
    keys = ("tied_set_size", "found_in_tied_set", "regret_vs_tied", "regret_vs_tied_max", "found_vs_winner_db",
            "found_vs_winner_low")
    if not rows or any(r.get("tied_set") is None for r in rows):
        return dict.fromkeys(keys)
    gains = [r["found_vs_winner"] for r in rows if r.get("found_vs_winner")]
    return {"tied_set_size": statistics.mean(len(r["tied_set"]) for r in rows),
            "found_in_tied_set": sum(bool(r["found_in_tied_set"]) for r in rows) / len(rows),
            "regret_vs_tied": statistics.mean(r["regret_vs_tied"] for r in rows),
            "regret_vs_tied_max": max(r["regret_vs_tied"] for r in rows),
            "found_vs_winner_db": statistics.mean(g["value"] for g in gains) if gains else None,
            "found_vs_winner_low": min(g["low"] for g in gains) if gains else None}


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
    return text + _format_noise(rows) + _format_questions(rows)


def _format_noise(rows: list[dict]) -> str:
    """The found best against the grid's configs tied with its winner within noise, where the curves
    kept per-image values; a line naming the studies whose curves did not."""
    if not rows or "tied_set_size" not in rows[0]:
        return ""
    known = [r for r in rows if r.get("tied_set_size") is not None]
    text = "\n\nwithin noise (paired bootstrap over the val images, 95%: reports.noise): the grid's configs tied " \
        "with its winner, and the found best against them"
    if known:
        text += "\n\n" + table(known, [
            ("study", "study", ""), ("schedule", "schedule", ""), ("tied_set_size", "tied set", ".1f"),
            ("found_in_tied_set", "found in it", ".0%"), ("regret_vs_tied", "regret vs tied", ".2%"),
            ("regret_vs_tied_max", "max", ".2%"), ("found_vs_winner_db", "found vs winner dB", "+.3f"),
            ("found_vs_winner_low", "low", "+.3f")])
    bare = sorted({r["study"] for r in rows if r.get("tied_set_size") is None})
    if bare:
        text += "\n\n" + ", ".join(bare) + ": no per-image values in the curves (recorded before bench curves " \
            "kept them): no tied set, no intervals"
    return text


def _format_questions(rows: list[dict]) -> str:
    asked = [{**r, "directions": f"{r['directions_match'][0]}/{r['directions_match'][1]}"}
             for r in rows if "directions_match" in r]
    if not asked:
        return ""
    return "\n\nthe study's questions carried to the full budget: their extra compute (FLOP-weighted share of the " \
        "grid) and the question steps whose direction matches the full grid's (summed over seeds)\n\n" + table(asked, [
            ("study", "study", ""), ("schedule", "schedule", ""), ("compute_fraction", "compute", ".1%"),
            ("questions_compute_fraction", "questions", "+.1%"), ("questions_compute_fraction_max", "max", "+.1%"),
            ("directions", "directions match", "")])


def format_questions(rows: list[dict]) -> str:
    """Each question step of each replayed row that carried questions (at its fewest slots): the
    direction the schedule's full-budget trials give against the full grid's. Signs without an interval
    ("+?", "-?") where the curves kept no per-image values."""
    lines = []
    for r in rows:
        if "questions" not in r or r["slots"] != min(x["slots"] for x in rows if x["schedule"] == r["schedule"]):
            continue
        lines.append(f"{r['curves']} (seed {r['seed']}) {r['schedule']}: directions match "
                     f"{r['directions_match'][0]}/{r['directions_match'][1]}")
        for q in r["questions"]:
            for st in q["steps"]:
                where = f" at {q['along']} {st['along']}" if st["along"] is not None else ""
                mark = "ok" if st["match"] else "DIFFERS"
                lines.append(f"  {q['name']}: {q['vary']} {st['low']} -> {st['high']}{where}: found {st['found']}, "
                             f"grid {st['grid']}  {mark}")
            for cell in q["left_out"]:
                lines.append(f"  {q['name']}: left out (no full-budget trial): {cell}")
    return "\n".join(lines)


SUBCOMMAND = ("search schedules replayed on recorded learning curves: compute, regret, the winner",
              _arguments, _run)
