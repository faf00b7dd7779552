"""Replay a study from measured learning curves: Ray's ASHA rule, 2 trials at a time, Optuna's grid
order, measured per-epoch times. Answers, before running Ray: which trials finish, how long the
study takes, and whether the first rung's ranking predicts the final one (Spearman).

    PYTHONPATH=. python docs/demo-design/simulate.py CURVES_DIR SPEEDS.json --grace 3 --rf 2 ...

CURVES_DIR holds one JSON per trial, written by curves.py with the study's exact schedule (the
cosine lr depends on the number of epochs, so curves do not transfer between schedules).
SPEEDS.json maps "arch_bB_cC" -> {"images_per_s": ..., "eval_s": ...} measured at 1 thread.
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def spearman(a, b) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    if len(a) < 3 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def ray_milestones(grace: int, rf: float, max_t: int) -> list[int]:
    """AsyncHyperBandScheduler's rungs for brackets=1: grace * rf^k, k < int(log(max_t/grace)/log(rf) + 1)."""
    n = int(np.log(max_t / grace) / np.log(rf) + 1)
    return sorted(int(grace * rf ** k) for k in range(n))


class Asha:
    """Ray's _Bracket.on_result for mode=min (rewards are -val/mse)."""

    def __init__(self, milestones: list[int], rf: float):
        self.rungs = [(m, {}) for m in sorted(milestones, reverse=True)]
        self.rf = rf

    def on_result(self, trial: str, epoch: int, val_mse: float) -> bool:
        reward = -val_mse
        for milestone, recorded in self.rungs:
            if epoch >= milestone and trial in recorded:
                break  # stop_last_trials=False
            if epoch < milestone or trial in recorded:
                continue
            cutoff = np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100) if recorded else None
            recorded[trial] = reward
            return not (cutoff is not None and reward < cutoff)
        return True


@dataclass
class Outcome:
    finished: list[str]
    pruned: list[str]
    slot_seconds: float
    wall_seconds: float
    rho: float
    best: str
    rung_vals: dict
    final_vals: dict


def grid_order(space: dict, seed: int) -> list[dict]:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.GridSampler(space, seed=seed)
    study = optuna.create_study(sampler=sampler)
    dists = {k: optuna.distributions.CategoricalDistribution(v) for k, v in space.items()}
    order = []
    for _ in range(math.prod(len(v) for v in space.values())):
        trial = study.ask(dists)
        order.append(dict(trial.params))
    return order


def simulate(curves: dict[str, list[float]], order: list[str], epoch_seconds: dict[str, float], *,
             grace: int, rf: float, epochs: int, patience: int, slots: int = 2,
             overhead: float = 4.0) -> Outcome:
    """curves: trial -> val/mse per epoch (at least `epochs` long); order: the start order."""
    asha = Asha(ray_milestones(grace, rf, epochs), rf)
    queue = list(order)
    running: list[tuple[float, str, int]] = []  # (time of the next report, trial, its epoch)
    best = {n: math.inf for n in order}
    bad = dict.fromkeys(order, 0)
    ran = dict.fromkeys(order, 0)
    finished, pruned, wall = [], [], 0.0

    def start(t: float) -> None:
        name = queue.pop(0)
        heapq.heappush(running, (t + overhead + epoch_seconds[name], name, 1))

    for _ in range(min(slots, len(queue))):
        start(0.0)
    while running:
        t, name, epoch = heapq.heappop(running)
        val = curves[name][epoch - 1]
        ran[name] = epoch
        if val < best[name]:
            best[name], bad[name] = val, 0
        else:
            bad[name] += 1
        done = epoch == epochs or bad[name] >= patience
        keep = asha.on_result(name, epoch, val)
        if done or not keep:
            (finished if done else pruned).append(name)
            wall = max(wall, t)
            if queue:
                start(t)
        else:
            heapq.heappush(running, (t + epoch_seconds[name], name, epoch + 1))
    slot_seconds = sum(overhead + epoch_seconds[n] * ran[n] for n in order)
    rung = {n: curves[n][grace - 1] for n in order}
    final = {n: best[n] for n in finished}
    rho = spearman([rung[n] for n in finished], [final[n] for n in finished])
    winner = min(finished, key=lambda n: final[n]) if finished else ""
    return Outcome(finished, pruned, slot_seconds, wall, rho, winner, rung, final)


def coverage(finished: list[str], configs: dict[str, dict]) -> dict:
    """What the report can draw from the finished trials."""
    done = [configs[n] for n in finished]
    res = [c for c in done if c["arch"] == "residual"]
    ref = {(c["blocks"], c["channels"]) for c in done if c["arch"] == "refiner"}
    depths_at = {}
    widths_at = {}
    for c in done:
        depths_at.setdefault((c["arch"], c["channels"]), set()).add(c["blocks"])
        widths_at.setdefault((c["arch"], c["blocks"]), set()).add(c["channels"])
    return {"finished": len(done),
            "max_depths_at_one_width": max((len(v) for v in depths_at.values()), default=0),
            "max_widths_at_one_depth": max((len(v) for v in widths_at.values()), default=0),
            "sizes": len({(c["arch"], c["blocks"], c["channels"]) for c in done}),
            "equal_size_pairs": len(ref & {(c["blocks"], c["channels"]) for c in res})}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("curves")
    parser.add_argument("speeds")
    parser.add_argument("--grace", type=int, nargs="+", default=[2])
    parser.add_argument("--rf", type=float, nargs="+", default=[2.0])
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--patience", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--select", default="", help="only trials whose name contains all of these (comma)")
    parser.add_argument("--eval-scale", type=float, default=1.0, help="multiply measured eval seconds")
    parser.add_argument("--verbose", action="store_true", help="print each replay's order and finished trials")
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="scale each trial's epoch time by a random factor in [1-j, 1+j] (timing noise)")
    parser.add_argument("--repeats", type=int, default=1, help="replays per order (with --jitter)")
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    speeds = json.loads(Path(args.speeds).read_text())["sizes"]
    curves, configs, secs = {}, {}, {}
    for path in sorted(Path(args.curves).glob("*.json")):
        rec = json.loads(path.read_text())
        if not all(s in rec["name"] for s in args.select.split(",") if s):
            continue
        c = rec["config"]
        key = f"{c['arch']}_b{c['blocks']}_c{c['channels']}"
        curves[rec["name"]] = [h["val/mse"] for h in rec["history"]]
        configs[rec["name"]] = c
        sp = speeds[key]
        secs[rec["name"]] = c["epoch_samples"] / sp["images_per_s"] + args.eval_scale * sp["eval_s"]
    # The study's own grid, values in the order demo.toml lists them: Optuna's GridSampler shuffles
    # the product once with the seed and hands trial n grid point n, so seed 0 is the demo's order.
    keys = ("arch", "blocks", "channels", "lr", "eta_min")
    space = {k: sorted({c[k] for c in configs.values()}, key=lambda v: (v != "residual", v)) for k in keys}
    by_params = {tuple(configs[n][k] for k in keys): n for n in curves}
    for grace in args.grace:
        for rf in args.rf:
            rows = []
            for seed, rep in [(s, r) for s in range(args.first_seed, args.first_seed + args.seeds)
                              for r in range(args.repeats)]:
                order = [by_params[tuple(p[k] for k in keys)] for p in grid_order(space, seed)]
                rng = np.random.default_rng(1000 * seed + rep)
                noisy = {n: t * rng.uniform(1 - args.jitter, 1 + args.jitter) for n, t in secs.items()}
                out = simulate(curves, order, noisy, grace=grace, rf=rf, epochs=args.epochs,
                               patience=args.patience)
                cov = coverage(out.finished, configs)
                rows.append((out, cov))
                print(f"g={grace} rf={rf:g} seed={seed}: rungs {ray_milestones(grace, rf, args.epochs)} "
                      f"finished {cov['finished']} wall {out.wall_seconds:.0f}s slot {out.slot_seconds:.0f}s "
                      f"rho {out.rho:+.2f} depths {cov['max_depths_at_one_width']} widths "
                      f"{cov['max_widths_at_one_depth']} pairs {cov['equal_size_pairs']} best {out.best}")
                if args.verbose:
                    short = lambda n: f"{configs[n]['arch'][:3]}({configs[n]['blocks']},{configs[n]['channels']})"  # noqa: E731
                    print("   order:   ", " ".join(short(n) for n in order))
                    print("   finished:", " ".join(short(n) for n in out.finished))
            rhos = [o.rho for o, _ in rows]
            print(f"  -> median wall {np.median([o.wall_seconds for o, _ in rows]):.0f}s, median rho "
                  f"{np.nanmedian(rhos):+.2f}")


if __name__ == "__main__":
    main()
