"""The report's section on benchmark folders: what `sr-search evaluate` logged (docs/tracking-schema.md,
"Evaluations"), drawn per folder as bicubic against each evaluated trial and its x8 ensemble ("+").

It reads only MLflow: the eval/* metrics and tags of a study's runs (keys from sr_core.contract) and
each run's per-image artifact. A study never evaluated has no such metrics, and its report no such
section.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

import pandas as pd
import plotly.graph_objects as go
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from plotly.subplots import make_subplots

from sr_core.contract import (BICUBIC, ENSEMBLE_FORWARDS, EVAL_METRICS, EXPERIMENT, PER_IMAGE_FIELDS, SELF_ENSEMBLE,
                              eval_artifact, eval_label, eval_tag, parse_eval_key)

from . import figure_base as fb
from . import figures as fg
from . import summary as sm
from .load import RunData, _search, load_artifact

FOLDER_COLUMNS = ("study", "folder", "variant", "name", "label", "run_id", "lr_kernel", "images",
                  *EVAL_METRICS, "n_params", "flops_per_image")
IMAGE_COLUMNS = ("study", "folder", "label", *PER_IMAGE_FIELDS)
BICUBIC_COLOR = "#555555"
TRIAL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


@dataclass(frozen=True)
class Evaluations:
    """`folders`: one row per (study, folder, model row): the folder means. `images`: one row per image
    of each, from the runs' per-image artifacts. Both in table order (`table_order`)."""
    folders: pd.DataFrame
    images: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.folders.empty


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def run_rows(run: Run, study: str) -> list[dict]:
    """The folder rows one run's eval metrics hold: bicubic on a study run, a trial's own and its
    ensemble's on a trial run. Ensemble figures the run's latest evaluation did not remake (its tag
    eval/<folder>/self_ensemble is not "true") are left out: they may be of another LR kernel."""
    metrics, tags, params = run.data.metrics, run.data.tags, run.data.params
    rows: dict[tuple[str, str | None], dict] = {}
    for key, value in metrics.items():
        parsed = parse_eval_key(key)
        if parsed is None:
            continue
        folder, variant, metric = parsed
        if variant == SELF_ENSEMBLE and tags.get(eval_tag(folder, SELF_ENSEMBLE)) != "true":
            continue
        name = run.info.run_name or run.info.run_id
        flops = None if variant == BICUBIC else _number(params.get("flops_per_image"))
        rows.setdefault((folder, variant), {
            "study": study, "folder": folder, "variant": variant or "", "name": name,
            "label": eval_label(name, variant), "run_id": run.info.run_id,
            "lr_kernel": tags.get(eval_tag(folder, "lr_kernel"), "?"),
            "images": _number(tags.get(eval_tag(folder, "images"))),
            "n_params": None if variant == BICUBIC else _number(params.get("n_params")),
            "flops_per_image": flops * ENSEMBLE_FORWARDS if flops and variant == SELF_ENSEMBLE else flops,
        })[metric] = value
    return list(rows.values())


def table_order(folders: pd.DataFrame) -> pd.DataFrame:
    """Per study and folder (in first-seen order): bicubic, then the trials by their own PSNR-Y, best
    first, each followed by its "+" row."""
    if folders.empty:
        return folders
    df = folders.copy()
    own = df[df["variant"] == ""].set_index(["study", "folder", "run_id"])["psnr_y"]
    df["_own"] = [own.get((s, f, r), float("nan")) for s, f, r in zip(df["study"], df["folder"], df["run_id"])]
    df["_study"] = pd.factorize(df["study"])[0]
    df["_folder"] = pd.factorize(df["folder"])[0]
    df["_kind"] = df["variant"].map({BICUBIC: 0, "": 1, SELF_ENSEMBLE: 2})
    df["_bicubic"] = df["variant"] != BICUBIC
    ordered = df.sort_values(["_study", "_folder", "_bicubic", "_own", "run_id", "_kind"],
                             ascending=[True, True, True, False, True, True], kind="stable")
    return ordered.drop(columns=["_own", "_study", "_folder", "_kind", "_bicubic"]).reset_index(drop=True)


def _per_image(tracking_uri: str, row: dict) -> list[dict]:
    raw = load_artifact(tracking_uri, row["run_id"], eval_artifact(row["folder"]))
    if raw is None:
        return []
    wanted = row["variant"]
    return [{"study": row["study"], "folder": row["folder"], "label": row["label"], **r}
            for r in json.loads(raw) if r.get("variant", "") == wanted]


def load_evaluations(tracking_uri: str, data: RunData) -> Evaluations:
    """The eval figures of the report's studies: their study runs and trial runs, as MLflow holds them."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    rows: list[dict] = []
    for study in data.studies.itertuples():
        rows += run_rows(client.get_run(study.run_id), study.study)
        children = _search(client, experiment.experiment_id, f"tags.`mlflow.parentRunId` = '{study.run_id}'")
        for run in sorted(children, key=lambda r: r.info.start_time):
            rows += run_rows(run, study.study)
    folders = table_order(pd.DataFrame(rows, columns=FOLDER_COLUMNS))
    images = [r for row in folders.to_dict("records") for r in _per_image(tracking_uri, row)]
    return Evaluations(folders, pd.DataFrame(images, columns=IMAGE_COLUMNS))


# -- the section -----------------------------------------------------------------------------------
def _label(row, many_studies: bool) -> str:
    return f"{row['study']}: {row['label']}" if many_studies else row["label"]


def evaluation_figure(folders: pd.DataFrame) -> go.Figure:
    """PSNR-Y and SSIM-Y per folder: one marker per model row (bicubic grey, each trial its colour, its
    "+" row the same colour as a diamond), side by side within a folder."""
    if folders.empty:
        raise fg.FigureUnavailable("no study of this report was evaluated on a benchmark folder")
    many = folders["study"].nunique() > 1
    fig = make_subplots(rows=1, cols=2, subplot_titles=("PSNR-Y (dB)", "SSIM-Y"))
    colors: dict[str, str] = {}
    for (study, run_id, variant), rows in folders.groupby(["study", "run_id", "variant"], sort=False):
        first = rows.iloc[0]
        key = f"{study}/{run_id}"
        color = BICUBIC_COLOR if variant == BICUBIC else colors.setdefault(key, TRIAL_COLORS[len(colors) % len(TRIAL_COLORS)])
        label = _label(first, many)
        for col, metric in enumerate(("psnr_y", "ssim_y"), start=1):
            fig.add_scatter(x=rows["folder"], y=rows[metric], name=label, legendgroup=label, showlegend=col == 1,
                            mode="markers", marker=dict(color=color, size=11,
                                                        symbol="diamond" if variant == SELF_ENSEMBLE else "circle"),
                            row=1, col=col)
    fig.update_layout(scattermode="group")
    fig.update_xaxes(title_text="benchmark folder")
    for col, metric in enumerate(("psnr_y", "ssim_y"), start=1):  # zoomed to the figures: they differ by little
        low, high = folders[metric].min(), folders[metric].max()
        pad = max(high - low, abs(high) * 1e-3) * 0.25
        fig.update_yaxes(range=[low - pad, high + pad], row=1, col=col)
    caption = ("Each folder's mean over its images, on Y of BT.601 YCbCr with 4 pixels cropped from each border "
               "(papers' convention). Grey: MATLAB's bicubic of the same LR; a diamond: the trial's x8 "
               "self-ensemble (its name with papers' +).")
    return fb.finish(fig, "Benchmark folders: bicubic against each evaluated trial", caption, height=440)


def _table(df: pd.DataFrame, heads: list[str], cells, text_columns: int) -> str:
    """An HTML table; its first `text_columns` columns are words, left-aligned, the rest figures."""
    left = ' style="text-align:left"'
    head = "".join(f"<th{left if i < text_columns else ''}>{escape(h)}</th>" for i, h in enumerate(heads))
    body = "".join("<tr>" + "".join(f"<td{left if i < text_columns else ''}>{c}</td>" for i, c in enumerate(cells(r)))
                   + "</tr>" for r in df.to_dict("records"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _giga(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value) / 1e9:.3g} G"


def folders_table(folders: pd.DataFrame) -> str:
    """The papers' table: per folder bicubic first, then each trial and its "+" row."""
    many = folders["study"].nunique() > 1
    heads = ["folder", "model", "LR", "images", "PSNR-Y (dB)", "SSIM-Y", "PSNR RGB (dB)", "params", "FLOPs/img"]
    return _table(folders, heads, lambda r: [
        escape(r["folder"]), escape(_label(r, many)), escape(str(r["lr_kernel"])), sm.fmt(r["images"], ".0f"),
        sm.fmt(r["psnr_y"], ".2f"), sm.fmt(r["ssim_y"], ".4f"), sm.fmt(r["psnr"], ".2f"),
        sm.fmt(r["n_params"], ",.0f"), _giga(r["flops_per_image"])], text_columns=3)


def images_table(images: pd.DataFrame) -> str:
    """Every image's figures, per folder and image, one row per model row."""
    many = images["study"].nunique() > 1
    ordered = images.sort_values(["folder", "image"], kind="stable")
    heads = ["folder", "image", "model", "HR size", "PSNR-Y (dB)", "SSIM-Y", "PSNR RGB (dB)"]
    return _table(ordered, heads, lambda r: [
        escape(r["folder"]), escape(r["image"]), escape(_label(r, many)),
        f"{sm.fmt(r['height'], '.0f')}x{sm.fmt(r['width'], '.0f')}",
        sm.fmt(r["psnr_y"], ".2f"), sm.fmt(r["ssim_y"], ".4f"), sm.fmt(r["psnr"], ".2f")], text_columns=3)


def evaluation_body(evaluations: Evaluations, figure_html) -> tuple[str, str]:
    """(HTML, caption) of the section; `figure_html(fig, div_id)` embeds a figure as the page does."""
    folders = evaluations.folders
    body = folders_table(folders) + figure_html(evaluation_figure(folders), "figure-evaluation")
    if not evaluations.images.empty:
        body += (f"<details><summary>Every image ({len(evaluations.images)} rows)</summary>"
                 f"{images_table(evaluations.images)}</details>")
    caption = ("sr-search evaluate, as SR papers score Set5/Set14/B100: HR mod-cropped to a multiple of 4, LR by "
               "the kernel shown (matlab: MATLAB's bicubic imresize, the papers' LR), whole-image inference, SR "
               "rounded to 8 bits; PSNR-Y and SSIM-Y on Y of BT.601 YCbCr with 4 pixels cropped from each border, "
               "RGB PSNR without a crop, each the mean over the folder's images. FLOPs: forward, per 32x32 LR input "
               "(x8 for +). Comparable with a paper's x4 table only on the paper's own images, with matlab LR; "
               "models trained on other data (DIV2K in most papers) differ for that reason too.")
    return body, caption
