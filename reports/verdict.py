"""One verdict on the pruning, from the audit and the val set's noise together: one sentence, never
two that disagree. Used by the report (reports/analysis.rung_check) and by `run`'s closing lines.

- A pruned config that the audit resumed to the full budget and that beats the search's winner beyond
  noise (its 95% paired bootstrap interval excludes zero, reports.noise) is a pruning miss, named with
  the rung it was cut at and its rank there.
- An audited config better in value but within noise is tied: no miss.
- A rank correlation over trials that are all tied with the best within noise is uninformative: any
  ranking of them is noise, however high the rho.
- The sentence names the schedule that ran and what each audited trial actually trained: resumed to
  the full budget, or stopped early by patience (and at which epoch).
"""
from __future__ import annotations

import math

from .noise import Gain, gain, tied_with_best

RELATION = {"better": "better than", "tied": "tied with", "worse": "worse than"}


def schedule_words(kind: str, rungs: list[int], reduction_factor: float | None, insure: str = "") -> str:
    """`synchronous halving (rungs at epochs 1, 2, 4; the best 1/2 and the best of each arch go on)`."""
    name = {"halving": "synchronous halving", "asha": "ASHA", "none": "no pruning"}.get(kind, kind or "the schedule")
    if kind == "none" or not rungs:
        return name
    keep = f"; the best 1/{reduction_factor:g} go on" if reduction_factor else ""
    if insure and kind == "halving":
        keep += f", and the best of each {insure}"
    return f"{name} (rungs at epoch{'s' if len(rungs) > 1 else ''} {', '.join(map(str, rungs))}{keep})"


def schedule_of(params: dict) -> str:
    """The schedule a study ran, in words, from its study run's params (Study.flat_params)."""
    kind = params.get("pruner.kind", "")
    if kind in ("", "auto"):
        kind = "halving" if params.get("search.sampler", "grid") == "grid" else "asha"
    try:
        grace, rf = int(params["pruner.grace_period"]), int(params["pruner.reduction_factor"])
        epochs = int(params["train.epochs"])
    except (KeyError, ValueError):
        return {"halving": "synchronous halving", "asha": "ASHA"}.get(kind, kind)
    rungs, r = [], grace
    while r < epochs and kind != "none":
        rungs.append(r)
        r *= rf
    return schedule_words(kind, rungs, rf, params.get("pruner.insure", "") if kind == "halving" else "")


def trained_words(audited: dict, max_epochs: int | None) -> str:
    """What an audited trial actually trained after it was resumed."""
    stopped, ran = audited.get("stopped_at"), audited.get("epochs_run")
    if ran is None or not math.isfinite(float(ran)):
        return "resumed"
    ran = int(ran)
    if max_epochs and ran < max_epochs:
        return f"resumed from epoch {_int(stopped)} and stopped early by patience at epoch {ran}"
    return f"resumed from epoch {_int(stopped)} to epoch {ran}"


def _int(value) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return "?"


def _better(a: float, b: float, mode: str) -> bool:
    return a < b if mode == "min" else a > b


def _gain(a: dict, b: dict, metric: str, mode: str) -> Gain | None:
    ia, ib = a.get("images"), b.get("images")
    if ia and ib and len(ia) == len(ib):
        return gain(ia, ib, metric, mode)
    return None


def pruning_sentence(study: str, schedule: str, winner: dict | None, audited: list[dict], finished: list[dict],
                     rho: float | None, n: int, metric: str = "val/mse", mode: str = "min",
                     max_epochs: int | None = None, rung: int | None = None) -> str:
    """The verdict. `winner`, `audited` and `finished` rows: name, value (the objective at the best
    epoch), images (per-image values or None); audited ones also stopped_at, rank, pruned, epochs_run.
    `rho` None: no rank correlation was computed (run's closing lines), the sentence says nothing of it."""
    head = f"{study}, {schedule}"
    parts = []
    miss = False
    if audited and winner is not None:
        best = min(audited, key=lambda a: a["value"] if mode == "min" else -a["value"])
        where = (f"{best['name']} (cut at the epoch-{_int(best.get('stopped_at'))} rung, ranked "
                 f"{_int(best.get('rank'))} of {_int(best.get('pruned'))} pruned; {trained_words(best, max_epochs)})")
        g = _gain(best, winner, metric, mode)
        count = f"the best of {len(audited)} audited trial(s), " if len(audited) > 1 else "the audited trial "
        if g is None:
            relation = "better than" if _better(best["value"], winner["value"], mode) else "not better than"
            miss = relation == "better than"
            parts.append(f"{'a pruning miss, noise unknown' if miss else 'no pruning miss'}: {count}{where}, ended "
                         f"{relation} the winner {winner['name']} ({metric} {best['value']:.5g} against "
                         f"{winner['value']:.5g}; no per-image values, so no interval)")
        elif g.verdict == "better":
            miss = True
            parts.append(f"a pruning miss: {count}{where}, beat the winner {winner['name']} beyond noise "
                         f"({g.text()})")
        else:
            relation = "tied with" if g.verdict == "tied" else "worse than"
            parts.append(f"no pruning miss: {count}{where}, ended {relation} the winner {winner['name']} "
                         f"({g.text()})")
        for other in audited:  # every audited trial against the winner, not only the best of them
            if other is best:
                continue
            g = _gain(other, winner, metric, mode)
            parts[-1] += (f"; {other['name']} ({trained_words(other, max_epochs)}): "
                          + (f"{g.text()}, {RELATION[g.verdict]} the winner" if g
                             else f"{metric} {other['value']:.5g}, noise unknown"))
    elif winner is not None:
        parts.append("no audit ran, so a miss cannot be ruled out")
    over = f"{n} trials" if not audited else f"{n} trials ({n - len(audited)} finished, {len(audited)} audited)"
    rank = _rank_words(rho, over, finished, metric, mode, not miss, rung) if rho is not None else ""
    if rank:
        parts.append(rank)
    if not parts:
        return f"{head}: cannot judge the pruning: no trial ran to its end."
    return f"{head}: " + "; ".join(parts) + "."


def _rank_words(rho: float, over: str, finished: list[dict], metric: str, mode: str, judge: bool,
                rung: int | None) -> str:
    if not math.isfinite(rho):
        return (f"too few trials that ran to their end ({over}) have differing values at the first rung to "
                "correlate its ranking with the final one")
    corr = f"Spearman ρ = {rho:.3f} over {over} at {'epoch ' + str(rung) if rung else 'the first rung'}"
    imaged = {r["name"]: r["images"] for r in finished if r.get("images")}
    if len(imaged) >= 2 and len(imaged) == len(finished):
        best = min(finished, key=lambda r: r["value"] if mode == "min" else -r["value"])["name"]
        if len(tied_with_best(imaged, best, metric, mode)) == len(imaged):
            return (f"the rung ranking is uninformative ({corr}): every trial that ran to its end is tied with "
                    "the best within noise, so any ranking of them is noise")
    if not judge:
        return f"the rung ranking missed it ({corr})"
    if round(rho, 9) >= 0.8:
        return f"the rung ranking predicted the final one well ({corr})"
    if round(rho, 9) >= 0.5:
        return f"the rung ranking mostly held, with late bloomers ({corr})"
    return f"the rung ranking said little of the final one ({corr}): raise pruner.grace_period"
