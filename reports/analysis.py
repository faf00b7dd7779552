"""Pure analysis helpers: data in, data out. No MLflow, no plotly, no I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sr_core.contract import ARCH_PARAMS, FINISHED, OBJECTIVE, OBJECTIVE_MODE, best_position

from .verdict import pruning_sentence


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that ran to the end and have a finite val/mse."""
    ok = trials["status"].isin(FINISHED) & np.isfinite(trials["val/mse"].astype(float))
    return trials[ok]


def _counted(trials: pd.DataFrame, require_finished: bool) -> pd.DataFrame:
    """Finished trials; or, for values taken at one equal budget, every trial with a val/mse."""
    return finished(trials) if require_finished else trials[np.isfinite(trials["val/mse"].astype(float))]


def best_trial(trials: pd.DataFrame, objective: tuple[str, str] = (OBJECTIVE, OBJECTIVE_MODE)) -> pd.Series | None:
    """The best trial by the one rule (`contract.best_position`, which search applies too), over the
    trials in start order, by the study's objective (`RunData.objective`: a column of the best epoch's
    values and its direction). None when no trial finished."""
    metric, mode = objective
    ordered = trials.sort_values("start_time", kind="stable") if "start_time" in trials else trials
    at = best_position(list(ordered["status"]), list(ordered[metric].astype(float)), mode)
    return None if at is None else ordered.iloc[at]


def shape_columns(trials: pd.DataFrame) -> list[str]:
    """The columns that size a net: blocks, channels, and the numeric parameters of a user's arch
    (sr_core.contract.ARCH_PARAMS names them per trial; a built-in's trial has none: NaN there)."""
    named = trials[ARCH_PARAMS].dropna().astype(str) if ARCH_PARAMS in trials else pd.Series([], dtype=str)
    extra = sorted({n for names in named for n in names.split(",") if n and n in trials})
    return ["blocks", "channels", *(n for n in extra if pd.api.types.is_numeric_dtype(trials[n]))]


def best_per_size(trials: pd.DataFrame, by: Sequence[str] | None = None,
                  require_finished: bool = True) -> pd.DataFrame:
    """Best trial (lowest val/mse over lr and eta_min) per size (by default arch and `shape_columns`),
    pooling studies; finished trials only unless the caller compares values taken at one equal budget."""
    done = _counted(trials, require_finished)
    if done.empty:
        return done
    by = ("arch", *shape_columns(done)) if by is None else by
    idx = done.groupby(list(by), dropna=False)["val/mse"].idxmin()
    return done.loc[idx.to_numpy()].sort_values(list(by)).reset_index(drop=True)


def pareto_front(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """Boolean mask of the rows no other row beats on both x and y (both minimised).

    A row is dominated when another row is <= on both and < on at least one. Rows with a
    missing x or y are never on the front. Identical rows do not dominate each other.
    """
    xs = df[x].to_numpy(dtype=float)
    ys = df[y].to_numpy(dtype=float)
    valid = np.isfinite(xs) & np.isfinite(ys)
    xv, yv = xs[valid], ys[valid]
    # n x n comparison: reports hold hundreds of trials at most.
    no_worse = (xv[None, :] <= xv[:, None]) & (yv[None, :] <= yv[:, None])
    better = (xv[None, :] < xv[:, None]) | (yv[None, :] < yv[:, None])
    dominated = (no_worse & better).any(axis=1)
    mask = np.zeros(len(df), dtype=bool)
    mask[np.flatnonzero(valid)] = ~dominated
    return pd.Series(mask, index=df.index, name="pareto")


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties), as scipy.stats.spearmanr.

    Pairs with a missing value are dropped. NaN when fewer than 3 pairs remain or a side is
    constant.
    """
    pairs = pd.DataFrame({"a": np.asarray(a, dtype=float), "b": np.asarray(b, dtype=float)})
    pairs = pairs[np.isfinite(pairs["a"]) & np.isfinite(pairs["b"])]
    if len(pairs) < 3:
        return math.nan
    ra = pairs["a"].rank(method="average").to_numpy()
    rb = pairs["b"].rank(method="average").to_numpy()
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass(frozen=True)
class PowerLaw:
    """y = coef * x**slope, fitted by least squares on log10(x), log10(y)."""

    slope: float
    coef: float
    r2: float
    n: int

    def predict(self, x: np.ndarray | float) -> np.ndarray | float:
        return self.coef * np.power(x, self.slope)

    def ratio(self, x_factor: float) -> float:
        """Predicted factor on y when x is multiplied by x_factor."""
        return float(x_factor**self.slope)


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw | None:
    """Least-squares line in log-log space. None with < 3 positive points or one distinct x."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys) & (xs > 0) & (ys > 0)
    lx, ly = np.log10(xs[ok]), np.log10(ys[ok])
    if len(lx) < 3 or np.ptp(lx) == 0:
        return None
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (intercept + slope * lx)
    total = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else 1.0
    return PowerLaw(slope=float(slope), coef=float(10**intercept), r2=r2, n=int(len(lx)))


def psnr_change_db(mse_ratio: float) -> float:
    """PSNR change implied by multiplying MSE by mse_ratio (PSNR = 10 log10(1/MSE))."""
    return -10.0 * math.log10(mse_ratio)


def doubling_width_statement(arch: str, fit: PowerLaw) -> str:
    """Plain words: what doubling width (params ~ width^2, so ~4x params) is predicted to buy."""
    ratio = fit.ratio(4.0)
    change = (ratio - 1.0) * 100.0
    db = psnr_change_db(ratio)
    return (
        f"{arch}: val/mse ∝ params^{fit.slope:.3f} (R² {fit.r2:.2f}, {fit.n} sizes). "
        f"Doubling width (≈4x parameters) is predicted to multiply val/mse by {ratio:.3f} "
        f"({change:+.1f}%), about {db:+.2f} dB PSNR."
    )


def coverage_choice(trials: pd.DataFrame, fixed: str, varied: str, require_finished: bool = True) -> int | None:
    """The value of `fixed` whose finished trials span the most distinct `varied` values.

    Ties go to the value with more finished trials, then to the larger value. None when no
    value of `fixed` has at least two distinct `varied` values. `require_finished=False`: every
    trial with a val/mse counts (values taken at one equal budget).
    """
    done = _counted(trials, require_finished)
    if done.empty:
        return None
    stats = done.groupby(fixed).agg(span=(varied, "nunique"), count=(varied, "size")).reset_index()
    stats = stats[stats["span"] >= 2]
    if stats.empty:
        return None
    top = stats.sort_values(["span", "count", fixed], ascending=False).iloc[0]
    return int(top[fixed])


def default_width(trials: pd.DataFrame, require_finished: bool = True) -> int | None:
    """Channel width with the most depth coverage (for the depth-effect figure)."""
    return coverage_choice(trials, fixed="channels", varied="blocks", require_finished=require_finished)


def default_depth(trials: pd.DataFrame, require_finished: bool = True) -> int | None:
    """Depth with the most width coverage (for the width-effect figure)."""
    return coverage_choice(trials, fixed="blocks", varied="channels", require_finished=require_finished)


def coverage(trials: pd.DataFrame, fixed: str, varied: str, require_finished: bool = True) -> int:
    """The most distinct `varied` values any one value of `fixed` has (0 when there are no trials)."""
    done = _counted(trials, require_finished)
    return int(done.groupby(fixed)[varied].nunique().max()) if not done.empty else 0


def rung_epochs(grace_period: int, reduction_factor: float, max_epoch: int) -> list[int]:
    """ASHA rung epochs grace_period * rf^k up to max_epoch."""
    if grace_period < 1 or max_epoch < grace_period:
        return []
    rungs, epoch = [], float(grace_period)
    while epoch <= max_epoch and len(rungs) < 64:
        rungs.append(int(round(epoch)))
        if reduction_factor <= 1:
            break
        epoch *= reduction_factor
    return rungs


@dataclass(frozen=True)
class RungCheck:
    """How well val/mse at the first rung predicts the final val/mse of trials that ran to the end:
    the finished ones, and the pruned ones a pruning audit resumed to the full budget."""

    study: str
    rung: int
    rho: float
    n: int
    verdict: str
    # run_id, name, rung_val_mse, final_val_mse, kind ("finished" or "audited")
    table: pd.DataFrame
    audit: str = ""  # the audit's verdict (audit_verdict), "" without an audit


def rung_check(
    study: str,
    trials: pd.DataFrame,
    history: pd.DataFrame,
    grace_period: int,
    reduction_factor: float | None = None,
    audits: pd.DataFrame | None = None,
    images: dict | None = None,
    objective: tuple[str, str] = (OBJECTIVE, OBJECTIVE_MODE),
    schedule: str = "",
) -> RungCheck:
    """Spearman between val/mse at epoch == grace_period and the final val/mse of the trials that ran
    to their end: the finished ones and the audited ones (pruned, then resumed to the full budget).

    The final val/mse is the trial's best-epoch val/mse (what its saved weights give); an audited
    trial's rung value is its pruned run's. The verdict is one sentence (reports/verdict.py): the
    audit against the winner on the study's objective, with the val set's noise when per-image values
    (`images`: run id -> VAL_IMAGES) were logged, then what the rung ranking is worth; where the
    eventual best ranked at the rung follows.
    """
    metric, mode = objective
    own = trials[trials["study"] == study]
    at_rung = history[(history["study"] == study) & (history["epoch"] == grace_period)]
    rung_vals = at_rung.groupby("run_id")["val/mse"].last().astype(float)
    done = finished(own)
    table = pd.DataFrame(
        {
            "run_id": done["run_id"].to_numpy(),
            "name": done["name"].to_numpy(),
            "rung_val_mse": done["run_id"].map(rung_vals).to_numpy(dtype=float),
            "final_val_mse": done["val/mse"].to_numpy(dtype=float),
            "kind": "finished",
        }
    ).dropna()
    audited = _audited(study, audits, rung_vals)
    finished_rows, audited_rows = _verdict_rows(done, audited, audits, images or {}, metric)
    winner = (min if mode == "min" else max)(finished_rows, key=lambda r: r["value"]) if finished_rows else None
    if audited is not None and len(audited):
        table = pd.concat([table, audited[table.columns]], ignore_index=True)
    rho = spearman(table["rung_val_mse"], table["final_val_mse"])
    n = len(table)
    max_epochs = pd.to_numeric(own.get("max_epochs"), errors="coerce").max() if "max_epochs" in own else None
    sentence = pruning_sentence(study, schedule or f"rungs from epoch {grace_period}", winner, audited_rows,
                                finished_rows, rho, n, metric, mode,
                                int(max_epochs) if max_epochs is not None and np.isfinite(max_epochs) else None,
                                grace_period)
    audit = sentence if audited_rows else ""
    if not np.isfinite(rho):
        return RungCheck(study, grace_period, rho, n, sentence, table, audit)
    winner_row = table[table["kind"] == "finished"]
    if len(winner_row):
        sentence += _winner_at_rung(winner_row.loc[winner_row["final_val_mse"].idxmin()], rung_vals, reduction_factor)
    return RungCheck(study, grace_period, rho, n, sentence, table, audit)


def _verdict_rows(done: pd.DataFrame, audited: pd.DataFrame | None, audits: pd.DataFrame | None,
                  images: dict, metric: str) -> tuple[list[dict], list[dict]]:
    """The finished and the audited trials as the verdict reads them (reports/verdict.py): name, the
    objective's value, per-image values; the audited ones with their rung, rank and epochs run."""
    def row(r, value: float) -> dict:
        return {"name": r["name"], "value": value, "run_id": r["run_id"],
                "images": (images.get(r["run_id"]) or {}).get(metric)}
    value = done[metric].astype(float) if metric in done else done["val/mse"].astype(float)
    finished_rows = [row(r, float(value[i])) for i, r in done.iterrows() if np.isfinite(value[i])]
    audited_rows = []
    if audited is not None and len(audited):
        own_audits = audits.set_index("run_id")
        for _, a in audited.iterrows():
            full = own_audits.loc[a["run_id"]]
            v = float(full[metric]) if metric in full else float(a["final_val_mse"])  # older audit tables: val/mse
            audited_rows.append({**row(a, v), "stopped_at": a["stopped_at"], "rank": a["rank"],
                                 "pruned": a["pruned"], "epochs_run": full.get("epochs_run")})
    return finished_rows, audited_rows


def _winner_at_rung(winner: pd.Series, rung_vals: pd.Series, reduction_factor: float | None) -> str:
    """Where the eventual best ranked at the rung among every trial that reached it, and whether the
    schedule's keep-the-top-1/rf rule keeps it."""
    ranks = rung_vals.dropna().rank(method="min")
    if winner["run_id"] not in ranks.index:
        return ""
    rank, field = int(ranks[winner["run_id"]]), len(ranks)
    words = f" The eventual best ({winner['name']}) ranked {rank} of {field} at the rung"
    if reduction_factor and reduction_factor > 1:
        keep = max(1, math.ceil(field / reduction_factor))
        kept = "inside" if rank <= keep else "outside"
        words += f", {kept} the top {keep} that the schedule keeps (1/{reduction_factor:g})"
    return words + "."


def _audited(study: str, audits: pd.DataFrame | None, rung_vals: pd.Series) -> pd.DataFrame | None:
    """The study's audit runs that ran to their end, with their pruned run's value at the rung."""
    if audits is None or audits.empty:
        return None
    own = audits[(audits["study"] == study) & audits["status"].isin(FINISHED)]
    return pd.DataFrame({
        "run_id": own["run_id"].to_numpy(), "name": own["name"].to_numpy(),
        "rung_val_mse": own["source_run_id"].map(rung_vals).to_numpy(dtype=float),
        "final_val_mse": own["val/mse"].to_numpy(dtype=float), "kind": "audited",
        "rank": own["rank"].to_numpy(dtype=float), "pruned": own["pruned"].to_numpy(dtype=float),
        "stopped_at": own["stopped_at"].to_numpy(dtype=float)}).dropna(subset=["final_val_mse"])


def time_unit(seconds: pd.Series | np.ndarray) -> tuple[float, str]:
    """A divisor and unit name that suit the largest value: s, min or h."""
    values = np.asarray(seconds, dtype=float)
    values = values[np.isfinite(values)]
    peak = float(values.max()) if len(values) else 0.0
    if peak < 120:
        return 1.0, "s"
    if peak < 2 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


@dataclass(frozen=True)
class Anytime:
    """The search's best val/mse so far against the device-hours it had spent, epoch by epoch."""

    study: str
    curve: pd.DataFrame  # device_hours, best_val_mse, name (the trial whose epoch set it)
    spent_hours: float  # what the search trained, all its trials' epochs
    full_hours: float  # every trial run to its full budget, at its own measured epoch time


def device_share(trials: pd.DataFrame) -> pd.Series:
    """Each trial's share of a device (its Ray GPU fraction; a whole slot on a CPU), by run_id."""
    gpus = pd.to_numeric(trials.get("gpus", pd.Series(np.nan, index=trials.index)), errors="coerce")
    return pd.Series(np.where(gpus > 0, gpus, 1.0), index=trials["run_id"].to_numpy())


def anytime(study: str, trials: pd.DataFrame, history: pd.DataFrame) -> Anytime | None:
    """Epochs of the study's trials in the order they ended (logged_at), each costing its
    epoch_seconds times its trial's device share: the cumulative device-hours and the best val/mse
    any trial had reached by then. None without timed epochs."""
    own = trials[trials["study"] == study]
    rows = history[history["run_id"].isin(own["run_id"])]
    if "logged_at" not in rows:
        return None
    rows = rows.dropna(subset=["logged_at", "epoch_seconds", "val/mse"])
    if rows.empty:
        return None
    share = device_share(own)
    rows = rows.sort_values(["logged_at", "run_id", "epoch"], kind="stable")
    cost = rows["epoch_seconds"].to_numpy(dtype=float) * rows["run_id"].map(share).to_numpy(dtype=float)
    hours = np.cumsum(cost) / 3600.0
    best = np.minimum.accumulate(rows["val/mse"].to_numpy(dtype=float))
    names = rows["run_id"].map(own.set_index("run_id")["name"]).to_numpy()
    curve = pd.DataFrame({"device_hours": hours, "best_val_mse": best, "name": names})
    # the full budget: each trial's mean epoch cost times its max_epochs
    per_epoch = rows.assign(cost=cost).groupby("run_id")["cost"].mean()
    budget = own.set_index("run_id")["max_epochs"].astype(float)
    full = float((per_epoch * budget.reindex(per_epoch.index)).sum()) / 3600.0
    return Anytime(study, curve, float(hours[-1]), full)
