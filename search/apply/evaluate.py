"""`sr-search evaluate`: a study's trained models on full-size benchmark folders, scored the way SR
papers score Set5 and friends, so the figures can stand beside published ones.

The conventions (docs/tracking-schema.md, "Evaluations"): HR mod-cropped to a multiple of 4, LR by
MATLAB's bicubic unless told otherwise (search.apply.benchmark_folders), whole-image inference (tiled under
a memory bound, which is exact: sr_core.infer), the SR output rounded to 8 bits as the papers' scripts
save it, then per image PSNR and SSIM on Y of BT.601 YCbCr with 4 pixels cut from each border, and
RGB PSNR without a crop; each folder's figure is the mean over its images. The baseline is MATLAB's
bicubic upscale of the same LR (the papers' "Bicubic" row), and `--self-ensemble` adds the x8
geometric ensemble as a second row per trial, labelled with papers' "+".

Every input is decoded and checked, and every selected trial found with its weights, before the
first MLflow write; then each run's figures are logged as soon as they are made (a crash halfway
keeps what was finished).
"""
from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from search import tracking
from search.apply.benchmark_folders import (LR_KERNEL_WORDS, BenchmarkFolder, BenchmarkImage,
                                            load_benchmark_folders)
from search.errors import StudyError
from sr_core import full_val
from sr_core.contract import (BEST_WEIGHTS, BICUBIC, EVAL_METRICS, FINISHED, ROLE_FINAL, ROLE_TRIAL, SELF_ENSEMBLE,
                              WITH_WEIGHTS, eval_key, eval_label, eval_tag)
from sr_core.dihedral import NUM_OPS
from sr_core.infer import load_model, tiling_for, upscale_image
from sr_core.matlab_resize import matlab_upscale
from sr_core.pixels import to_float

WEIGHTS = BEST_WEIGHTS


@dataclass(frozen=True)
class EvalOptions:
    data: tuple[Path, ...]
    trials: tuple[str, ...] = ("best",)  # "best", "top:K" or run names
    self_ensemble: bool = False
    lr_kernel: str = "matlab"
    tile: int | None = None  # LR pixels; None: the largest under sr_core.infer's memory bound
    device: str | None = None  # None: cuda when available


@dataclass(frozen=True)
class ImageScore:
    image: str
    height: int  # of the mod-cropped HR
    width: int
    psnr_y: float
    ssim_y: float
    psnr: float


@dataclass(frozen=True)
class EvalRow:
    """One line of the table: one model (or bicubic) on one folder, with every image's figures."""
    folder: str
    variant: str | None  # BICUBIC, None (the trial's own forward) or SELF_ENSEMBLE
    name: str  # the trial's run name ("bicubic" for the baseline)
    scores: tuple[ImageScore, ...]
    n_params: int | None = None
    flops_per_image: float | None = None  # forward FLOPs per 32x32 LR input, x8 for the ensemble

    @property
    def label(self) -> str:
        return eval_label(self.name, self.variant)

    def mean(self, metric: str) -> float:
        """Per image, then averaged over the folder: the papers' convention (and val/psnr's)."""
        return sum(getattr(s, metric) for s in self.scores) / len(self.scores)


# -- choosing the trials -------------------------------------------------------------------------------
def ranked(rows: Sequence[Mapping[str, Any]], k: int, metric: str, mode: str) -> list[Mapping[str, Any]]:
    """The k best of `study_trials` rows by the one rule (tracking.best_of applied again to what is
    left), best first; fewer when fewer trials finished. ranked(rows, 1, ...) is [the best trial]."""
    remaining, out = list(rows), []
    while len(out) < k and (best := tracking.best_of(remaining, metric, mode)) is not None:
        out.append(best)
        remaining = [r for r in remaining if r is not best]
    return out


def _pick(rows: Sequence[Mapping[str, Any]], pick: str, metric: str, mode: str, study: str) -> list:
    if pick == "final":
        found = [r for r in rows if r.get("role") == ROLE_FINAL and r["status"] in FINISHED]
        if not found:
            raise StudyError(f"--trials final: study {study!r} has no finished final step ([final] epochs)")
        return found[-1:]
    if pick == "best" or pick.startswith("top:"):
        top = re.fullmatch(r"top:([0-9]+)", pick)
        if pick != "best" and (top is None or int(top.group(1)) < 1):
            raise StudyError(f"--trials {pick!r}: write top:K with a whole number K >= 1, e.g. top:3")
        searched = [r for r in rows if r.get("role", ROLE_TRIAL) == ROLE_TRIAL]  # the final is no trial
        found = ranked(searched, 1 if pick == "best" else int(top.group(1)), metric, mode)
        if not found:
            raise StudyError(f"study {study!r} has no trial that ran to its end (completed or early_stopped) "
                             f"yet, so --trials {pick} picks none; name a pruned trial to evaluate it")
        return found
    named = [r for r in rows if r["name"] == pick]
    if not named:
        known = ", ".join(sorted(r["name"] for r in rows)) or "none"
        raise StudyError(f"--trials {pick!r}: study {study!r} has no trial of that run name (its trials: {known})")
    if len(named) > 1:
        raise StudyError(f"--trials {pick!r}: {len(named)} trials of study {study!r} share that run name")
    if named[0]["status"] not in WITH_WEIGHTS:
        raise StudyError(f"--trials {pick!r}: that trial ended {named[0]['status']}, without weights to "
                         f"evaluate (trials that end {', '.join(WITH_WEIGHTS)} have them)")
    return named


def select_trials(rows: Sequence[Mapping[str, Any]], picks: Sequence[str], metric: str, mode: str,
                  study: str) -> list[Mapping[str, Any]]:
    """The trials `--trials` names, in the order given, each once: `best` (the one rule's best trial),
    `top:K` (the K best finished trials by the study's metric and direction) or run names (any trial
    with weights, pruned ones included). A StudyError names a pick that matches nothing."""
    chosen: list[Mapping[str, Any]] = []
    for pick in picks:
        chosen += [r for r in _pick(rows, pick, metric, mode, study) if all(r is not c for c in chosen)]
    return chosen


# -- scoring -------------------------------------------------------------------------------------------
def score_image(name: str, sr: torch.Tensor, hr: torch.Tensor) -> ImageScore:
    """One image's figures: float SR [3,H,W] in [0,1], rounded to 8 bits first; uint8 HR [3,H,W]
    (sr_core.full_val.score_image: what a study's in-loop full/ metrics compute too)."""
    return ImageScore(name, hr.shape[-2], hr.shape[-1], *full_val.score_image(sr, hr))


def score_folder(folder: BenchmarkFolder, upscale: Callable[[torch.Tensor], torch.Tensor],
                 progress: Callable[[int, BenchmarkImage, ImageScore], None]) -> tuple[ImageScore, ...]:
    """Every image of a folder upscaled (uint8 LR [3,h,w] -> float [3,4h,4w]) and scored."""
    scores = []
    for i, image in enumerate(folder.images, start=1):
        scores.append(score_image(image.name, upscale(image.lr), image.hr))
        progress(i, image, scores[-1])
    return tuple(scores)


def _bicubic(lr: torch.Tensor) -> torch.Tensor:
    return to_float(matlab_upscale(lr))


def _progress(log, label: str, folder: BenchmarkFolder, tile: int | None = None):
    def line(i: int, image: BenchmarkImage, score: ImageScore) -> None:
        h, w = image.lr.shape[-2:]
        tiles = math.ceil(h / tile) * math.ceil(w / tile) if tile else 1
        log(f"  [{folder.name} {i}/{len(folder.images)}] {label}: {image.name} {score.height}x{score.width}, "
            f"PSNR-Y {score.psnr_y:.2f} dB, SSIM-Y {score.ssim_y:.4f}"
            + (f" ({tiles} tiles of {tile} LR px)" if tiles > 1 else ""))
    return line


def bicubic_rows(folders: Sequence[BenchmarkFolder], log=print) -> list[EvalRow]:
    return [EvalRow(f.name, BICUBIC, BICUBIC, score_folder(f, _bicubic, _progress(log, BICUBIC, f)))
            for f in folders]


def trial_rows(model: torch.nn.Module, trial: Mapping[str, Any], folders: Sequence[BenchmarkFolder],
               options: EvalOptions, log=print) -> list[EvalRow]:
    """One trial's rows: per folder its own forward, then (with self_ensemble) the x8 ensemble."""
    tile, overlap = tiling_for(model, options.tile)
    flops = float(trial["flops_per_image"]) if trial.get("flops_per_image") else None
    n_params = int(trial["n_params"]) if trial.get("n_params") else None
    rows = []
    for folder in folders:
        for variant in (None, SELF_ENSEMBLE) if options.self_ensemble else (None,):
            ensemble = variant == SELF_ENSEMBLE
            label = eval_label(trial["name"], variant)

            def upscale(lr: torch.Tensor) -> torch.Tensor:
                return upscale_image(model, lr, tile=tile, overlap=overlap, self_ensemble=ensemble)

            scores = score_folder(folder, upscale, _progress(log, label, folder, tile))
            rows.append(EvalRow(folder.name, variant, trial["name"], scores, n_params,
                                flops * NUM_OPS if flops and ensemble else flops))
    return rows


# -- logging and the whole command -------------------------------------------------------------------
def _per_image(row: EvalRow) -> list[dict[str, Any]]:
    return [{"image": s.image, "height": s.height, "width": s.width, "variant": row.variant or "",
             **{m: getattr(s, m) for m in EVAL_METRICS}} for s in row.scores]


def log_rows(client, run_id: str, rows: Sequence[EvalRow], lr_kernel: str) -> None:
    """One run's rows (the study run's bicubic ones, or one trial's), folder by folder, through
    tracking.log_evaluation: eval/<folder>[/<variant>]/<metric> and the tags of sr_core.contract."""
    for folder in dict.fromkeys(r.folder for r in rows):
        here = [r for r in rows if r.folder == folder]
        means = {eval_key(folder, m, r.variant): r.mean(m) for r in here for m in EVAL_METRICS}
        tags = {eval_tag(folder, "lr_kernel"): lr_kernel, eval_tag(folder, "images"): len(here[0].scores)}
        if here[0].variant != BICUBIC:
            tags[eval_tag(folder, SELF_ENSEMBLE)] = str(any(r.variant == SELF_ENSEMBLE for r in here)).lower()
        tracking.log_evaluation(client, run_id, folder, means, tags, [x for r in here for x in _per_image(r)])


def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise StudyError(f"--device {name!r}: not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StudyError(f"--device {name!r}: this machine has no CUDA device; use --device cpu")
    return device


def _checked_trials(client, study: str, picks: Sequence[str]) -> tuple[str, list[Mapping[str, Any]]]:
    """(the study run's id, the trials `picks` name), each known to hold its weights."""
    found = tracking.require_study_run(client, study)
    metric, mode = tracking.study_objective(client, found[1])
    rows = tracking.study_trials(client, *found) + tracking.study_trials(client, *found, ROLE_FINAL)
    trials = select_trials(rows, picks, metric, mode, study)
    for trial in trials:
        if not tracking.has_artifact(client, trial["run_id"], WEIGHTS):
            raise StudyError(f"trial {trial['name']} of study {study!r} has no {WEIGHTS} artifact to evaluate")
    return found[1], trials


def evaluate_study(tracking_uri: str, study: str, options: EvalOptions, log=print) -> list[EvalRow]:
    """Bicubic and each chosen trial on each folder, logged to MLflow as they are made; the rows in the
    order made (search.apply.eval_table orders them). Bad input raises DataError/StudyError before any write."""
    from mlflow.tracking import MlflowClient

    device = _device(options.device)
    folders = load_benchmark_folders(options.data, options.lr_kernel)
    for f in folders:
        log(f"data         : {f.name}: {len(f.images)} images, HR mod-cropped to x4, LR by {LR_KERNEL_WORDS[f.lr_kernel]} "
            f"({', '.join(f'{i.name} {i.hr.shape[-2]}x{i.hr.shape[-1]}' for i in f.images)})")
    client = MlflowClient(tracking_uri)
    parent, trials = _checked_trials(client, study, options.trials)
    log(f"evaluate     : bicubic and {len(trials)} trial(s) ({', '.join(t['name'] for t in trials)}) on "
        f"{len(folders)} folder(s), on {device}" + (", each also x8 self-ensembled (+)" if options.self_ensemble else ""))
    # Everything is checked: from here on each run's figures are logged as soon as they are made.
    rows = bicubic_rows(folders, log)
    log_rows(client, parent, rows, options.lr_kernel)
    for trial in trials:
        with tempfile.TemporaryDirectory() as tmp:
            model = load_model(tracking.download(client, trial["run_id"], WEIGHTS, tmp), device)
        made = trial_rows(model, trial, folders, options, log)
        log_rows(client, trial["run_id"], made, options.lr_kernel)
        rows += made
    return rows
