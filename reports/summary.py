"""The header of a report: best config, trials by status, compute, estimate against actual.

Each function returns an HTML fragment; every value taken from MLflow is escaped.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd

from sr_core.contract import AUDIT_SUFFIX, ENDED, FINAL_FROM_AUDIT, FINAL_SUFFIX, UNFINISHED

from . import analysis as an
from .load import RunData
from .noise import gain, tied_with_best

STATUS_ORDER = ENDED + UNFINISHED


def fmt(value, spec: str = ".4g", missing: str = "—") -> str:
    """Format a number; missing or non-finite values become a dash."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return escape(str(value)) if value is not None else missing
    return missing if not math.isfinite(v) else format(v, spec)


def duration(seconds) -> str:
    """'42 s', '3.5 min', '1.25 h'."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(s):
        return "—"
    if s < 120:
        return f"{s:.0f} s"
    if s < 2 * 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def best_config(data: RunData) -> str:
    """One paragraph: the best config, its metrics and its gain over bicubic."""
    best = an.best_trial(data.trials, data.objective)
    if best is None:
        return '<p class="unavailable">No trial finished (completed or early_stopped) yet: no best config.</p>'
    study = data.studies.set_index("study").loc[best["study"]]
    bicubic = float(study["bicubic/val_psnr"])
    gain = (
        f" ({best['val/psnr'] - bicubic:+.2f} dB over bicubic at {bicubic:.2f} dB)"
        if math.isfinite(bicubic) and math.isfinite(best["val/psnr"])
        else " (no bicubic baseline logged)"
    )
    final = _final_line(study, bicubic)
    return (
        f'<p class="best"><b>{"Search&#39;s best" if final else "Best"}: {escape(best["name"])}</b> '
        f'(study {escape(best["study"])}): '
        f"{escape(best['arch'])}, {fmt(best['blocks'], 'g')} blocks, {fmt(best['channels'], 'g')} channels, "
        f"lr {fmt(best['lr'], 'g')}, eta_min {fmt(best['eta_min'], 'g')}, batch {fmt(best['batch_size'], 'g')}. "
        f"val MSE <b>{fmt(best['val/mse'], '.5f')}</b>, PSNR <b>{fmt(best['val/psnr'], '.2f')} dB</b>{gain}, "
        f"SSIM <b>{fmt(best['val/ssim'], '.4f')}</b>; {fmt(best['epochs_run'], '.0f')} epochs, "
        f"{duration(best['runtime_s'])}, {fmt(best['n_params'], ',.0f')} parameters.</p>{_noise(data, best, study)}"
        f"{final}"
    )


def _noise(data: RunData, best: pd.Series, study: pd.Series) -> str:
    """The best's gain over bicubic with its 95% interval over the val images, the configs tied with it
    within noise (reports.noise), and the final model against it: '' without per-image values."""
    metric, mode = data.objective

    def of(run_id):
        return (data.images.get(run_id) or {}).get(metric)
    mine, base = of(best["run_id"]), of(study["run_id"])
    if not mine:
        return ""
    parts = []
    if base and len(base) == len(mine):
        what = "in PSNR of the mean val MSE" if metric == "val/mse" else f"in {metric}"
        parts.append(f"{gain(mine, base, metric, mode).text()} over bicubic {what}")
    done = an.finished(data.trials[data.trials["study"] == best["study"]])
    imaged = {r["name"]: of(r["run_id"]) for _, r in done.iterrows() if of(r["run_id"])}
    if len(imaged) > 1:
        tied = tied_with_best(imaged, best["name"], metric, mode)
        others = [f"{escape(n)} ({-g.value:+.3f} {g.unit}, best over it {g.text(3)})" for n, g in tied.items()
                  if n != best["name"]]
        parts.append(f"tied with it within noise: {len(others)} of the {len(imaged) - 1} other finished trial(s)"
                     + (": " + "; ".join(others) if others else " (it is better than each beyond noise)"))
    final = study.get("final/run_id")
    if isinstance(final, str) and of(final) and len(of(final)) == len(mine):
        g = gain(of(final), mine, metric, mode)
        words = {"better": "better beyond noise", "tied": "tied within noise", "worse": "worse beyond noise"}
        parts.append(f"the final model against it: {g.text()} ({words[g.verdict]})")
    return (f'<p class="noise">With the val set\'s noise (95% paired bootstrap intervals over its {len(mine)} images): '
            + "; ".join(parts) + ".</p>")


def _final_line(study: pd.Series, bicubic: float) -> str:
    """The final step's model, labelled, beside the search's best: what `predict` uses."""
    if not isinstance(study.get("final/name"), str):
        return ""
    psnr = float(study["final/val_psnr"])
    gain = f" ({psnr - bicubic:+.2f} dB over bicubic)" if math.isfinite(bicubic) and math.isfinite(psnr) else ""
    return (f'<p class="best"><b>Final model: {escape(study["final/name"])}</b> ({escape(str(study["final/status"]))}): '
            f"{_final_origin(study)} trained again for {fmt(study['final/epochs'], '.0f')} epochs "
            f"([final] in the study file). val MSE <b>{fmt(study['final/val_mse'], '.5f')}</b>, PSNR "
            f"<b>{fmt(psnr, '.2f')} dB</b>{gain}. It is the model <code>sr-search predict</code> and "
            "<code>evaluate --trials final</code> use; the figures below are the search's trials.</p>")


def _final_origin(study: pd.Series) -> str:
    """Which configuration the final step trained (its run's tag, final/from): the search's best, or an
    audited pruned trial's that ended better than it once resumed to the full budget."""
    if study.get("final/from") != FINAL_FROM_AUDIT:
        return "the search's best configuration"
    audited = str(study["final/name"]).removesuffix(FINAL_SUFFIX) + AUDIT_SUFFIX
    return (f"the configuration of the audited trial {escape(audited)} (a pruned trial that, resumed to the "
            "full budget, ended better than the search's best)")


def status_table(trials: pd.DataFrame) -> str:
    """Trials by status, one row per study plus a total."""
    counts = pd.crosstab(trials["study"], trials["status"])
    extra = sorted(set(counts.columns) - set(STATUS_ORDER))
    cols = [c for c in STATUS_ORDER if c in counts.columns] + extra
    counts = counts[cols]
    if len(counts) > 1:
        counts.loc["all"] = counts.sum()
    head = "".join(f"<th>{escape(c)}</th>" for c in ["study", "trials", *cols])
    body = "".join(
        f"<tr><td>{escape(str(study))}</td><td>{int(row.sum())}</td>"
        + "".join(f"<td>{int(row[c])}</td>" for c in cols)
        + "</tr>"
        for study, row in counts.iterrows()
    )
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def cost_table(data: RunData) -> str:
    """Estimate against actual per study: trials, device-hours, wall-hours, and summed trial time."""
    rows = []
    trial_hours = data.trials.groupby("study")["runtime_s"].sum(min_count=1) / 3600
    for _, s in data.studies.iterrows():
        rows.append(
            {
                "study": s["study"],
                "device": s["device"] or "—",
                "grid": fmt(s["estimate/grid_size"], ".0f"),
                "trials est.": fmt(s["estimate/trials"], ".0f"),
                "trials run": str(int(s["n_trials"])),
                "device-h est.": fmt(s["estimate/device_hours"], ".3g"),
                "device-h actual": fmt(s["actual/device_hours"], ".3g"),
                "wall-h est.": fmt(s["estimate/wall_hours"], ".3g"),
                "wall-h actual": fmt(s["actual/wall_hours"], ".3g"),
                "sum of trial wall-h": fmt(trial_hours.get(s["study"], np.nan), ".3g"),
                "est. / actual": _ratio(s["estimate/device_hours"], s["actual/device_hours"]),
            }
        )
    head = "".join(f"<th>{escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _ratio(estimate, actual) -> str:
    e, a = float(estimate), float(actual)
    if not (math.isfinite(e) and math.isfinite(a)) or a <= 0:
        return "—"
    return f"{e / a:.2f}x"


def compute_line(data: RunData) -> str:
    """Total compute in words."""
    t = data.trials
    total = float(t["runtime_s"].sum(min_count=1))
    actual = data.studies["actual/device_hours"].astype(float)
    estimate = data.studies["estimate/device_hours"].astype(float)
    words = [f"{len(t)} trials in {len(data.studies)} stud{'y' if len(data.studies) == 1 else 'ies'}"]
    words.append(f"summed trial wall time {duration(total)}" if math.isfinite(total) else "no wall time logged")
    if actual.notna().any():
        words.append(f"actual device time {actual.sum():.3g} device-hours")
    if estimate.notna().any():
        words.append(f"estimated {estimate.sum():.3g} device-hours")
    missing = data.studies.loc[actual.isna(), "study"].tolist()
    note = f" (no actual/* logged for {', '.join(escape(m) for m in missing)})" if missing else ""
    return f"<p>Compute: {escape('; '.join(words))}{note}.</p>"


def data_line(data: RunData) -> str:
    """Train and val, with bicubic PSNR on each: a large gap means they differ in kind, and the
    net is judged on content it did not learn from."""
    parts = []
    for _, s in data.studies.iterrows():
        train, val = float(s.get("bicubic/train_psnr", math.nan)), float(s["bicubic/val_psnr"])
        sizes = f"{fmt(s.get('train_images'), '.0f')} train / {fmt(s.get('val_images'), '.0f')} val patches"
        gap = f", gap {train - val:+.2f} dB" if math.isfinite(train) and math.isfinite(val) else ""
        parts.append(f"{escape(str(s['study']))}: {sizes}; bicubic PSNR {fmt(train, '.2f')} dB on train, "
                     f"{fmt(val, '.2f')} dB on val{gap}")
    outside = []
    for _, s in data.studies.iterrows():
        for prefix, label in (("outside", "final model" if isinstance(s.get("final/name"), str) else "best model"),
                              ("outside_search", "search's best")):
            if math.isfinite(float(s.get(f"{prefix}/sr-search/gain_db", math.nan))):
                outside.append(f"{escape(str(s['study']))}, {label}: " + ", ".join(
                    f"{fmt(s[f'{prefix}/{k}/gain_db'], '+.2f')} dB ({k} LR)" for k in ("sr-search", "pil", "opencv")))
    also = (f"<p>Against bicubic on photos from outside scikit-image (scikit-learn's and "
            f"matplotlib's samples), by the tool that made their LR: {'; '.join(outside)}.</p>") if outside else ""
    return f"<p>Data: {'; '.join(parts)}.</p>{also}"


def interrupted_banner(data: RunData) -> str:
    """A study that has not completed says so first: its figures show what was recorded so far."""
    open_studies = data.studies[data.studies["status"] != "completed"]
    if open_studies.empty:
        return ""
    names = ", ".join(f"{escape(str(r['study']))} ({escape(str(r['status']))})" for _, r in open_studies.iterrows())
    unfinished = int(data.trials["status"].isin(UNFINISHED).sum())
    return (f'<p class="unavailable">Not final: {names}. {unfinished} trial(s) have not ended; the figures '
            "show what was recorded so far. `sr-search run --study NAME --resume` continues it.</p>")
