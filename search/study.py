"""Study specs: TOML files validated into a frozen `Study`.

A study file has these tables; every field is optional except `[space]`:

    [study]      name, description, data ("embedded" or a folder), val_data (a folder of val photos for an
                 HR-only data folder), crops ("random" or "fixed": an HR-only folder's train images),
                 full_val (a folder of full-size images, e.g. Set5, scored in tiles as `evaluate` does:
                 full/psnr_y, full/ssim_y, full/psnr) and full_val_every (score it every N epochs, and at
                 a trial's last)
    [search]     sampler ("grid" | "tpe" | "random"), trials (0 = the whole grid), seed,
                 metric (the objective: a val metric every epoch logs, or a full/ metric with
                 [study].full_val) and mode ("min" | "max")
    [space]      TrialConfig's searched fields (arch, blocks, channels, lr, eta_min): a value (fixed),
                 a list (choices), or for lr/eta_min a table {low, high, log} (tpe/random only);
                 an arch of your own (sr_core.archs) may take more: any other key, a value or a list
    [train]      TrialConfig's fixed fields (epochs, batch_size, grad_clip, patience, augment,
                 epoch_samples), with TrialConfig's defaults
    [pruner]     kind ("auto" | "halving" | "asha" | "none"; auto: halving for a grid, asha for the
                 samplers that learn from finished trials), grace_period (the first rung), reduction_factor,
                 insure (halving: also keep the best trial of each value of this [space] key, e.g.
                 "blocks", at every rung), audit (after the search, this many pruned trials, spread over
                 the rung ranking, resume from their checkpoints to the full budget: runs of role `audit`)
    [resources]  cpus_per_trial, gpus_per_trial (fractions pack trials on a GPU; "auto": each config's
                 own, from its predicted memory), gpu_memory_gib (one GPU's, for "auto"; 0 = measured),
                 max_concurrent (0 = as many as fit), max_failures (restarts of a trial whose process died)
    [final]      epochs (0 = none): after the search, the best trial's configuration is trained
                 again from scratch for this many epochs, as a run of its own (role `final`): the
                 model `predict` and `evaluate` then use, shown beside the search's best
    [questions]  the comparisons the report answers at the full budget (search.questions): slices of
                 [space], each point at its best lr, carried to the full budget by the halving schedule
    [faults]     test-only: run name = fault spec (see sr_core.faults), to inject a fault into
                 one trial through the trainer's own hook; real studies leave it out

The trial's hyperparameters are declared once, in `sr_core.trial_config.TrialConfig`: `[space]` and
`[train]` are its fields by table, `Train` is derived from them, and `Study.trial_config` is the one
mapping from a study and a sampled point to a TrialConfig. Any unknown table or field, wrong type or
out-of-range value is a `StudyError` naming the file and the field (the CLI turns it into exit 2).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from search.errors import StudyError
from search.questions import Questions, parse_questions
from search.rungs import halving_rungs
from search.study_space import Range, _fail, check_nets, extra_space, space_value
from search.study_space import typed as _typed
from search.study_tables import faults_table as _faults
from search.study_tables import head_table as _head
from search.study_tables import train_loss as _train_loss
from sr_core.archs import as_params
from sr_core.contract import FULL_METRICS, OBJECTIVE, OBJECTIVE_METRICS
from sr_core.errors import ConfigError
from sr_core.trial_config import TrialConfig, fields_in, fold_point

SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("auto", "halving", "asha", "none")
SPACE_KEYS = tuple(f.name for f in fields_in("space"))
#: What a study may optimise: the val metrics every epoch logs, the full/ ones with [study].full_val.
METRICS = OBJECTIVE_METRICS
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}

#: [train]: TrialConfig's fixed-per-study fields with TrialConfig's defaults (derived, not re-declared).
Train = dataclasses.make_dataclass(
    "Train", [(f.name, f.type, field(default=f.default)) for f in fields_in("train")], frozen=True)


@dataclass(frozen=True)
class Search:
    sampler: str = "tpe"
    trials: int = 0  # 0: the whole grid (grid sampler) / required > 0 otherwise
    seed: int = 0
    metric: str = OBJECTIVE  # what Optuna, the scheduler and "the best trial" compare
    mode: str = ""  # "min" or "max"; empty: min for an MSE, max otherwise

    @property
    def direction(self) -> str:
        return self.mode or ("min" if self.metric.endswith("mse") else "max")


@dataclass(frozen=True)
class Pruner:
    kind: str = "auto"  # halving (search.tune.scheduler.SyncHalving) for a grid, asha otherwise
    grace_period: int = 2  # the first rung's epoch
    reduction_factor: int = 3
    insure: str = ""  # halving: a [space] key whose every value keeps its best trial at each rung
    audit: int = 0  # pruned trials resumed to the full budget after the search (search.run.audit)


@dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1.0
    # A fraction packs trials on a GPU; "auto" gives each config its own from its predicted memory and
    # compute share (search.tune.packing). Ignored where the cluster has no GPU: trials run on CPU.
    gpus_per_trial: float | str = 1.0
    gpu_memory_gib: float = 0.0  # one GPU's memory for "auto"; 0: measured on a GPU node
    max_concurrent: int = 0
    max_failures: int = 2  # Ray restarts a trial whose process died this often, from its last epoch


@dataclass(frozen=True)
class Final:
    """The search's best configuration trained again (search.run.engine; no early stop, no pruning)."""
    epochs: int = 0  # 0: no final step


@dataclass(frozen=True)
class Study:
    name: str
    space: dict[str, tuple | Range]
    description: str = ""
    data: str = "embedded"
    val_data: str = ""  # an HR-only data folder's val photos ("": every 5th of its photos)
    crops: str = ""  # an HR-only data folder's train images: "random" crops ("" too) or "fixed" patches
    full_val: str = ""  # a folder of full-size images scored in the loop ("" = none; sr_core.full_val)
    full_val_every: int = 1  # epochs between its scorings (and a trial's last epoch)
    search: Search = field(default_factory=Search)
    train: Train = field(default_factory=Train)
    pruner: Pruner = field(default_factory=Pruner)
    resources: Resources = field(default_factory=Resources)
    final: Final = field(default_factory=Final)
    source: str = ""  # the file it came from
    text: str = ""  # the file's text, snapshotted into the workdir and MLflow
    faults: dict[str, str] = field(default_factory=dict)  # test-only: run name -> fault spec
    questions: Questions = field(default_factory=Questions)

    @property
    def schedule(self) -> str:
        """The pruner that runs: "halving", "asha" or "none". A grid is known up front, so it is
        halved synchronously (measured: BENCHMARKS.md, bench search); TPE and random learn from
        finished trials, which a synchronous schedule would hold back until its last rung."""
        if self.pruner.kind != "auto":
            return self.pruner.kind
        return "halving" if self.search.sampler == "grid" else "asha"

    @property
    def grid_size(self) -> int | None:
        """Distinct configs in the space; None when a range makes it continuous."""
        if any(isinstance(v, Range) for v in self.space.values()):
            return None
        return math.prod(len(v) for v in self.space.values())

    @property
    def num_trials(self) -> int:
        return self.search.trials or (self.grid_size or 0)

    def grid(self) -> list[dict[str, Any]]:
        """Every config of a discrete space, in a stable order."""
        points: list[dict[str, Any]] = [{}]
        for key in self.space:  # TrialConfig's space fields, then a user arch's parameters
            points = [{**p, key: v} for p in points for v in self.space[key]]
        return points

    def rungs(self) -> list[int]:
        """The epochs at which a synchronous schedule pauses trials (each is checkpointed, whatever
        the trainer's checkpoint budget says, so a paused trial resumes exactly there); [] otherwise."""
        if self.schedule != "halving":
            return []
        return halving_rungs(self.pruner.grace_period, self.pruner.reduction_factor, self.train.epochs)

    def nets(self) -> list[tuple]:
        """Every network of the space, (arch, blocks, channels, params) as build_model takes them."""
        extras = [k for k in self.space if k not in SPACE_KEYS]
        return [(a, b, c, as_params(zip(extras, values))) for a, b, c, *values in itertools.product(
            self.space["arch"], self.space["blocks"], self.space["channels"], *(self.space[k] for k in extras))]

    def trial_constants(self) -> dict[str, Any]:
        """What every trial of the study shares: the [train] fields and the seed."""
        return {**dataclasses.asdict(self.train), "seed": self.search.seed}

    def trial_config(self, point: dict[str, Any]) -> TrialConfig:
        """The one mapping from a sampled point of [space] to the trial it runs (with its [faults])."""
        config = TrialConfig(**self.trial_constants(), **fold_point(point))
        fault = self.faults.get(config.run_name, "")
        return dataclasses.replace(config, fault=fault) if fault else config

    def final_study(self, point: dict[str, Any]) -> "Study":
        """The final step as a study of one trial: `point` (the search's best) for [final].epochs
        epochs, no pruner, no early stop."""
        train = dataclasses.replace(self.train, epochs=self.final.epochs, patience=self.final.epochs)
        return dataclasses.replace(self, space={k: (point[k],) for k in self.space}, train=train,
                                   search=dataclasses.replace(self.search, sampler="grid", trials=1),
                                   pruner=Pruner(kind="none"), final=Final(), faults={},
                                   questions=Questions())

    def audit_study(self) -> "Study":
        """The pruning audit's trials as a study: the search's own epochs, no pruner (search.run.audit)."""
        return dataclasses.replace(self, pruner=Pruner(kind="none"), final=Final(), faults={}, questions=Questions())

    def flat_params(self) -> dict[str, str]:
        """The spec flattened with dots, for MLflow params."""
        out = {"study.name": self.name, "study.data": self.data, "study.val_data": self.val_data,
               "study.crops": self.crops}
        if self.full_val:
            out |= {"study.full_val": self.full_val, "study.full_val_every": str(self.full_val_every)}
        for key, value in self.space.items():
            out[f"space.{key}"] = str(dataclasses.asdict(value) if isinstance(value, Range) else list(value))
        for section in ("search", "train", "pruner", "resources", "final"):
            for k, v in dataclasses.asdict(getattr(self, section)).items():
                out[f"{section}.{k}"] = str(v)
        out["search.mode"] = self.search.direction
        out["questions"] = self.questions.to_json()
        return out

    def with_overrides(self, **overrides: Any) -> "Study":
        """CLI flags over the file: data, full_val, epochs, trials, cpus/gpus per trial, max
        concurrency, and questions=False (--no-questions)."""
        where = "command-line flag"
        changes: dict[str, Any] = {}
        if overrides.get("questions") is False:
            changes["questions"] = self.questions.off()
        for key in ("data", "val_data"):
            if overrides.get(key) is not None and str(overrides[key]) != getattr(self, key):
                changes[key] = str(overrides[key])
                changes["description"] = ""  # it speaks of the file's data ("on the embedded photos")
        if overrides.get("full_val") is not None:
            changes["full_val"] = str(overrides["full_val"])
        for section, keys in (("train", ("epochs",)), ("search", ("trials",)),
                              ("resources", ("cpus_per_trial", "gpus_per_trial", "max_concurrent"))):
            given = {k: overrides[k] for k in keys if overrides.get(k) is not None}
            if given:
                current = dataclasses.asdict(getattr(self, section))
                changes[section] = _SECTIONS[section](current | given, where)
        study = dataclasses.replace(self, **changes)
        _check_consistency(study, where)
        return study


_RULES = {  # field -> (type, predicate, what the predicate requires), for the tables not in TrialConfig
    "sampler": (str, lambda v: v in SAMPLERS, f"one of {SAMPLERS}"),
    "trials": (int, lambda v: v >= 0, ">= 0"),
    "seed": (int, lambda v: v >= 0, ">= 0"),
    "metric": (str, lambda v: v in METRICS, f"one of {METRICS}"),
    "mode": (str, lambda v: v in ("", "min", "max"), "'min' or 'max'"),
    "kind": (str, lambda v: v in PRUNERS, f"one of {PRUNERS}"),
    "grace_period": (int, lambda v: v >= 1, ">= 1"),
    "reduction_factor": (int, lambda v: v >= 2, ">= 2"),
    "insure": (str, lambda v: v in ("", *SPACE_KEYS), f"empty or one of {SPACE_KEYS}"),
    "audit": (int, lambda v: v >= 0, ">= 0"),
    "cpus_per_trial": (float, lambda v: v > 0, "> 0"),
    "gpus_per_trial": ((float, str), lambda v: v == "auto" or not isinstance(v, str) and v >= 0, '>= 0 or "auto"'),
    "gpu_memory_gib": (float, lambda v: v >= 0, ">= 0"),
    "max_concurrent": (int, lambda v: v >= 0, ">= 0"),
    "max_failures": (int, lambda v: v >= 0, ">= 0"),
    "epochs": (int, lambda v: v >= 0, ">= 0"),  # [final]
}


def _known_fields(cls: type, table: Any, where: str, section: str) -> None:
    if not isinstance(table, dict):
        raise _fail(where, f"[{section}]", f"expected a table, got {table!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in known:
            raise _fail(where, f"[{section}].{key}", f"unknown field; known fields: {sorted(known)}")


def _build(cls: type, section: str) -> Any:
    def build(table: Any, where: str) -> Any:
        _known_fields(cls, table, where, section)
        values = {}
        for key, value in table.items():
            kind, ok, rule = _RULES[key]
            value = _typed(value, kind, where, f"[{section}].{key}")
            if not ok(value):
                raise _fail(where, f"[{section}].{key}", f"must be {rule}, got {value!r}")
            values[key] = value
        return cls(**values)
    return build


def _build_train(table: Any, where: str) -> Train:
    """[train]: typed by TrialConfig's annotations, range-checked by TrialConfig itself."""
    _known_fields(Train, table, where, "train")
    kinds = {f.name: _TYPES[f.type] for f in dataclasses.fields(Train)}
    values = {key: _typed(value, kinds[key], where, f"[train].{key}") for key, value in table.items()}
    train = Train(**values)
    try:
        TrialConfig(**dataclasses.asdict(train))
    except ConfigError as exc:
        raise _fail(where, f"[train].{exc.field}", str(exc)) from None
    return train


_SECTIONS = {"search": _build(Search, "search"), "train": _build_train, "pruner": _build(Pruner, "pruner"),
             "resources": _build(Resources, "resources"), "final": _build(Final, "final")}


def _check_consistency(study: Study, where: str) -> None:
    if study.search.sampler == "grid" and study.grid_size is None:
        raise _fail(where, "[search].sampler", "grid needs lists, not ranges, in [space]")
    if study.search.sampler != "grid" and study.search.trials == 0:
        raise _fail(where, "[search].trials", f"set how many trials {study.search.sampler!r} runs (> 0)")
    lrs, etas = study.space["lr"], study.space["eta_min"]
    min_lr = lrs.low if isinstance(lrs, Range) else min(lrs)
    max_eta = etas.high if isinstance(etas, Range) else max(etas)
    if max_eta > min_lr:
        raise _fail(where, "[space].eta_min", f"must not exceed the smallest lr ({max_eta} > {min_lr})")
    if study.pruner.kind != "none" and study.pruner.grace_period >= study.train.epochs:
        raise _fail(where, "[pruner].grace_period",
                    f"must be below [train].epochs ({study.pruner.grace_period} >= {study.train.epochs}),"
                    " or set [pruner].kind = \"none\"")
    if study.pruner.audit and study.schedule == "none":
        raise _fail(where, "[pruner].audit", f"audits pruned trials, and [pruner].kind = \"none\" prunes none "
                    f"(audit = {study.pruner.audit}): set a kind, or audit = 0")
    _check_full_val(study, where)
    rungs = study.rungs()
    if study.questions.active and study.questions.choose_at and rungs and study.questions.choose_at not in rungs:
        raise _fail(where, "[questions].choose_at", f"must be one of the schedule's rungs {rungs}, "
                    f"got {study.questions.choose_at}")


def _check_full_val(study: Study, where: str) -> None:
    """A full/ objective needs the folder, and a pruner must compare trials at epochs that score it:
    the rungs are the first rung times powers of the reduction factor (and the last epoch, always
    scored), so the first rung must be a multiple of full_val_every."""
    metric, every = study.search.metric, study.full_val_every
    if metric not in FULL_METRICS:
        return
    if not study.full_val:
        raise _fail(where, "[search].metric", f"{metric} is scored on [study].full_val, which this study does "
                    "not set: name a folder of full-size images in the file (e.g. full_val = \"benchmarks/Set5\"; "
                    "--full-val DIR then overrides it), or choose a val/ metric")
    if study.schedule != "none" and study.pruner.grace_period % every:
        raise _fail(where, "[pruner].grace_period", f"must be a multiple of [study].full_val_every ({every}) when "
                    f"the objective is {metric}: the schedule compares trials at epochs "
                    f"{study.pruner.grace_period}, x{study.pruner.reduction_factor}, ... and {metric} is scored "
                    f"only every {every} epochs (got grace_period = {study.pruner.grace_period})")


def parse_study(text: str, where: str, default_name: str) -> Study:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{where}: not valid TOML: {exc}") from None
    sections = {"study", "space", "faults", "questions", *_SECTIONS}
    for key in raw:
        if key not in sections:
            raise _fail(where, f"[{key}]", f"unknown table; expected some of {sorted(sections)}")
    space_raw = raw.get("space")
    if not isinstance(space_raw, dict):
        raise _fail(where, "[space]", "missing: a study needs a [space] table")
    space_raw = _train_loss(raw, space_raw, where)
    defaults = {f.name: f.default for f in fields_in("space")}
    space = {k: space_value(k, space_raw.get(k, defaults[k]), where) for k in SPACE_KEYS}
    space.update(extra_space(space_raw, SPACE_KEYS, space["arch"], where))
    check_nets(space, SPACE_KEYS, where)
    tables = {s: build(raw.get(s, {}), where) for s, build in _SECTIONS.items()}
    study = Study(**_head(raw, where, default_name), space=space, source=where, text=text, **tables,
                  faults=_faults(raw.get("faults", {}), where),
                  questions=parse_questions(raw.get("questions", {}), where, space))
    _check_consistency(study, where)
    return study


def bundled_studies() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("studies").iterdir() if p.name.endswith(".toml"))


def load_study(name_or_path: str | Path) -> Study:
    """A bundled study by name (`demo`, `residual`, `refiner`) or a path to the user's own TOML."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise StudyError(f"{path}: study file not found")
        return parse_study(path.read_text(encoding="utf-8"), str(path), path.stem)
    bundled = resources.files("studies").joinpath(f"{name_or_path}.toml")
    if not bundled.is_file():
        raise StudyError(f"unknown study {str(name_or_path)!r}: not a bundled study "
                         f"({', '.join(bundled_studies())}) and no such .toml file")
    return parse_study(bundled.read_text(encoding="utf-8"), f"studies/{name_or_path}.toml", str(name_or_path))
