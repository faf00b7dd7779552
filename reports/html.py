"""Assemble one self-contained HTML page: plotly.js inlined once, images as data URIs, no fetches."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from sr_core.contract import mask, write_text_atomic

from . import analysis as an
from . import answers
from . import comparison_html as ch
from . import figures as fg
from . import figures_effects as fe
from . import figures_questions as fq
from . import summary as sm
from .comparison import Comparison, load_comparison
from .evaluation import Evaluations, evaluation_body, load_evaluations
from .load import RunData, load_artifact, load_runs
from .noise import gain

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto;
       max-width: 1400px; padding: 0 16px; color: #222; }
h1 { margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
.meta, .caption { color: #555; } .caption { max-width: 1100px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
table.sortable th { cursor: pointer; background: #f4f4f4; user-select: none; }
table.sortable th[data-dir=asc]::after { content: " \\25B2"; }
table.sortable th[data-dir=desc]::after { content: " \\25BC"; }
tr.best td { background: #eaf5e4; font-weight: 600; }
tr.pruned td, tr.diverged td, tr.oom td, tr.failed td { color: #888; }
.table-wrap { max-height: 520px; overflow: auto; }
.unavailable { background: #eee; color: #555; border: 1px dashed #aaa; padding: 24px; }
img.samples { image-rendering: pixelated; max-width: 100%; border: 1px solid #ddd; }
#render-status { color: #aaa; font-size: 11px; margin-top: 40px; }
"""

# Runs before plotly.js, so that any error while drawing is counted by the render check.
ERROR_HOOK = """
window.__reportErrors = [];
window.addEventListener('error', function (e) { window.__reportErrors.push(String(e.message || e)); });
window.addEventListener('unhandledrejection', function (e) {
  window.__reportErrors.push('unhandled rejection: ' + String(e.reason)); });
"""

# Click a header to sort; cells carry their raw value in data-sort; missing values always go last.
SORTER = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('data-dir') !== 'asc';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
      th.setAttribute('data-dir', asc ? 'asc' : 'desc');
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-sort'), y = b.cells[col].getAttribute('data-sort');
        if (x === y) return 0; if (x === '') return 1; if (y === '') return -1;
        var nx = Number(x), ny = Number(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

# After load: how many plotly figures drew their SVG, how many images decoded, how many JS errors.
RENDER_CHECK = """
window.addEventListener('load', function () {
  setTimeout(function () {
    var figs = document.querySelectorAll('.plotly-graph-div'), drawn = 0;
    figs.forEach(function (f) { if (f.querySelector('.main-svg')) drawn++; });
    var imgs = document.querySelectorAll('img'), loaded = 0;
    imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) loaded++; });
    var el = document.getElementById('render-status');
    el.textContent = 'figures=' + figs.length + ' rendered=' + drawn + ' images=' + imgs.length +
      ' loaded=' + loaded + ' errors=' + window.__reportErrors.length;
    el.setAttribute('data-errors', window.__reportErrors.join(' | '));
  }, 500);
});
"""


@dataclass(frozen=True)
class Section:
    number: int
    heading: str
    body: str  # HTML
    caption: str = ""


def _figure_html(fig: go.Figure, div_id: str) -> str:
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG)


def _unavailable(reason: str) -> str:
    return f'<div class="unavailable">Not drawn: {escape(reason)}</div>'


def _figure_section(number: int, heading: str, make: Callable[[], go.Figure]) -> Section:
    try:
        fig = make()
    except fg.FigureUnavailable as exc:
        return Section(number, heading, _unavailable(str(exc)))
    caption = (fig.layout.meta or {}).get("caption", "")
    return Section(number, heading, _figure_html(fig, f"figure-{number}"), caption)


def _cell(value, shown: str) -> str:
    raw = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    return f'<td data-sort="{escape(raw)}">{shown}</td>'


def runs_table_html(trials: pd.DataFrame, objective: tuple[str, str], images: dict | None = None,
                    studies: pd.DataFrame | None = None) -> str:
    """Figure 1: the sortable runs table, best val/mse first; the best trial by the study's objective marked;
    with per-image values, each trial's gain over bicubic with its 95% paired bootstrap interval."""
    table = fg.runs_table(trials)
    best = an.best_trial(trials, objective)
    many = trials["study"].nunique() > 1
    gains = _bicubic_gains(table, objective, images or {}, studies)
    heads = ["name"] + (["study"] if many else []) + ["runtime", "channels", "eta_min", "lr", "blocks",
             "train/mse", "val/mse", "val/psnr (dB)", "val/ssim", "status", "epochs"]  # fmt: skip
    if gains:
        heads.append("vs bicubic (95%)")
    rows = []
    for _, r in table.iterrows():
        cells = [_cell(r["name"], escape(r["name"]))]
        if many:
            cells.append(_cell(r["study"], escape(r["study"])))
        cells += [
            _cell(r["runtime_s"], sm.duration(r["runtime_s"])),
            _cell(r["channels"], sm.fmt(r["channels"], "g")),
            _cell(r["eta_min"], sm.fmt(r["eta_min"], "g")),
            _cell(r["lr"], sm.fmt(r["lr"], "g")),
            _cell(r["blocks"], sm.fmt(r["blocks"], "g")),
            _cell(r["train/mse"], sm.fmt(r["train/mse"], ".5f")),
            _cell(r["val/mse"], sm.fmt(r["val/mse"], ".5f")),
            _cell(r["val/psnr"], sm.fmt(r["val/psnr"], ".2f")),
            _cell(r["val/ssim"], sm.fmt(r["val/ssim"], ".4f")),
            _cell(r["status"], escape(r["status"])),
            _cell(r["epochs_run"], f"{sm.fmt(r['epochs_run'], '.0f')}/{sm.fmt(r['max_epochs'], '.0f')}"),
        ]
        if gains:
            g = gains.get(r["run_id"])
            cells.append(_cell(g.value if g else None, escape(g.text()) if g else "—"))
        classes = [r["status"]] + (["best"] if best is not None and r["run_id"] == best["run_id"] else [])
        attrs = f'class="{escape(" ".join(classes))}" data-run-id="{escape(r["run_id"])}"'
        rows.append(f"<tr {attrs}>{''.join(cells)}</tr>")
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    return (
        f'<div class="table-wrap"><table class="sortable" id="runs-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _bicubic_gains(table: pd.DataFrame, objective: tuple[str, str], images: dict,
                   studies: pd.DataFrame | None) -> dict:
    """run id -> its gain over its study's bicubic (reports.noise), for the runs that kept per-image values."""
    if studies is None or not images:
        return {}
    metric, mode = objective
    base = {row["study"]: (images.get(row["run_id"]) or {}).get(metric) for _, row in studies.iterrows()}
    out = {}
    for _, r in table.iterrows():
        mine, floor = (images.get(r["run_id"]) or {}).get(metric), base.get(r["study"])
        if mine and floor and len(mine) == len(floor):
            out[r["run_id"]] = gain(mine, floor, metric, mode)
    return out


def samples_section(number: int, data: RunData, png: bytes | None) -> Section:
    """Figure 11: the best trial's LR / bicubic / SR / HR grid, embedded as a data URI."""
    heading = "Samples of the best trial (LR / bicubic / SR / HR)"
    best = an.best_trial(data.trials, data.objective)
    if best is None:
        return Section(number, heading, _unavailable("no trial finished, so there is no best trial to show"))
    if png is None:
        return Section(number, heading, _unavailable(f"the best trial {best['name']} has no samples.png artifact"))
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(png)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        reason = f"samples.png of {best['name']} is not a readable image: {exc}"
        return Section(number, heading, _unavailable(reason))
    scale = max(1, min(4, 1200 // max(width, 1)))  # small grids are magnified, pixel for pixel
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    body = (
        f'<img class="samples" alt="LR, bicubic, SR and HR samples of {escape(best["name"])}" '
        f'width="{width * scale}" height="{height * scale}" src="{uri}">'
    )
    caption = (
        "Columns: LR input, bicubic x4, the network's SR output, HR target; one row per val image. "
        f"Trial {best['name']}."
    )
    return Section(number, heading, body, caption)


def evaluation_section(number: int, evaluations: Evaluations | None) -> list[Section]:
    """The benchmark-folder section (`sr-search evaluate`), or none for a study never evaluated."""
    if evaluations is None or evaluations.empty:
        return []
    body, caption = evaluation_body(evaluations, _figure_html)
    return [Section(number, "Benchmark folders, scored as papers score them", body, caption)]


def comparison_section(number: int, comparison: Comparison | str) -> Section:
    """The same crops across trials (reports.comparison); `comparison` is the reason when there is none."""
    heading = "The same crops across trials, beside bicubic and HR"
    if isinstance(comparison, str):
        return Section(number, heading, _unavailable(comparison))
    return Section(number, heading, ch.comparison_body(comparison))


def question_heading(question: dict) -> str:
    """`Refiner vs residual at each blocks`, `Depth (blocks) at channels 32`, ..."""
    vary, along = question["vary"], question.get("along") or ""
    what = {"arch": "Refiner vs residual", "blocks": "Depth (blocks)", "channels": "Width (channels)"}.get(vary, vary)
    fixed = ", ".join(f"{k} {v}" for k, v in question.get("fixed", {}).items() if k != "arch")
    each = {"blocks": "depth (blocks)", "channels": "width (channels)", "arch": "architecture"}.get(along, along)
    return what + (f" at each {each}" if along else "") + (f", {fixed}" if fixed else "")


def effect_makers(data: RunData) -> list[tuple[str, Callable[[], go.Figure]]]:
    """The effect figures: each study's [questions] answered at the full budget with their noise
    (reports/figures_questions.py); for studies that name none, refiner vs residual, depth and width
    over the trials that finished."""
    t, s = data.trials, data.studies
    metric, mode = data.objective
    makers = []
    for _, study in s.iterrows():
        questions, _, ask = answers.parse((study.get("params") or {}).get("questions"))
        if not (questions and ask):
            continue
        own = t[t["study"] == study["study"]]
        audits = data.audits[data.audits["study"] == study["study"]] if not data.audits.empty else None
        rows = fq.question_rows(own, audits, data.images, metric)
        space, epochs = fq.space_of(own), int(pd.to_numeric(own["max_epochs"], errors="coerce").max())
        bicubic = data.images.get(study["run_id"])
        value = float(study.get("bicubic/" + metric.replace("/", "_"), float("nan")))
        where = f"{study['study']}: " if len(s) > 1 else ""
        for q in questions:
            makers.append((f"{where}{question_heading(q)}, at the full budget",
                           lambda q=q, rows=rows, space=space, bicubic=bicubic, value=value, epochs=epochs:
                           fq.question_figure(q, rows, space, metric, mode, bicubic, value, epochs)))
    if makers:
        return makers
    extra = [c for c in an.shape_columns(t) if c not in ("blocks", "channels")]  # a user arch's own
    return [("Refiner vs residual at equal size", lambda: fe.arch_comparison(t, s)),
            ("Depth effect", lambda: fe.depth_effect(t, studies=s)),
            ("Width effect", lambda: fe.width_effect(t, studies=s)),
            *((f"{c.capitalize()} effect", lambda c=c: fe.param_effect(t, c, studies=s)) for c in extra)]


def render_page(data: RunData, samples_png: bytes | None, evaluations: Evaluations | None = None,
                comparison: Comparison | str = "no comparison crops were loaded") -> str:
    """The full HTML document for already-loaded data."""
    t, h, s = data.trials, data.history, data.studies
    sections = [Section(1, "Runs (click a header to sort)", runs_table_html(t, data.objective, data.images, s))]
    makers: Sequence[tuple[str, Callable[[], go.Figure]]] = [
        *effect_makers(data),
        ("Training progress of the best trial", lambda: fg.best_progress(t, h, data.objective)),
        ("All trials' validation curves", lambda: fg.all_curves(t, h, s)),
        ("Cost vs quality (Pareto)", lambda: fg.pareto(t)),
        ("Scaling fit", lambda: fg.scaling_fit(t)),
        ("Pruning validity", lambda: fg.pruning_validity(t, h, s, data.audits, data.images, data.objective)),
        ("Anytime: best so far against compute", lambda: fg.anytime(t, h, s)),
        ("Parallel coordinates", lambda: fg.parallel_coordinates(t)),
    ]
    sections += [_figure_section(i, heading, make) for i, (heading, make) in enumerate(makers, start=2)]
    sections.append(samples_section(len(sections) + 1, data, samples_png))
    sections.append(comparison_section(len(sections) + 1, comparison))
    sections += evaluation_section(len(sections) + 1, evaluations)

    names = ", ".join(s["study"])
    body = "".join(
        f'<section id="section-{x.number}"><h2>{x.number}. {escape(x.heading)}</h2>{x.body}'
        + (f'<p class="caption">{escape(x.caption)}</p>' if x.caption else "")
        + "</section>"
        for x in sections
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sr-search report: {escape(names)}</title>
<style>{CSS}{ch.CSS}</style>
<script>{ERROR_HOOK}</script>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>sr-search report: {escape(names)}</h1>
<p class="meta">Generated {stamp} from MLflow store <code>{escape(mask(data.tracking_uri))}</code>.</p>
{sm.interrupted_banner(data)}
{sm.best_config(data)}
{sm.data_line(data)}
{sm.compute_line(data)}
<h3>Trials by status</h3>{sm.status_table(t)}
<h3>Cost: estimate against actual</h3>{sm.cost_table(data)}
{body}
<div id="render-status">render check pending (needs JavaScript)</div>
<script>{SORTER}</script>
<script>{RENDER_CHECK}</script>
</body></html>
"""


def write_atomic(path: Path, text: str) -> None:
    """Write the report as sr-search writes every file others read: readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def build_report(tracking_uri: str, studies: Sequence[str], out: str | os.PathLike) -> Path:
    """Read the studies from MLflow and write one self-contained HTML report to `out`.

    Raises ReportError (a ValueError) naming the study when a study is unknown or has no trials.
    """
    data = load_runs(tracking_uri, studies)
    best = an.best_trial(data.trials, data.objective)
    png = load_artifact(tracking_uri, best["run_id"], "samples.png") if best is not None else None
    try:
        comparison: Comparison | str = load_comparison(data)
    except fg.FigureUnavailable as exc:
        comparison = str(exc)
    path = Path(out)
    write_atomic(path, render_page(data, png, load_evaluations(tracking_uri, data), comparison))
    return path.resolve()
