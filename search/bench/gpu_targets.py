"""The GPU script of the compile-and-memory issue: every target in one run of about 6 minutes.

    PYTHONPATH=. timeout 540 python3 -m search.bench.gpu_targets --out DIR     # on the GPU machine (~375 s)
    PYTHONPATH=. python3 -m search.bench.gpu_targets --out DIR --smoke        # tiny sizes on CPU

Needs torch, numpy, pillow, scikit-image; never Ray, Optuna or MLflow. Built on search.bench.gpu's
runner: sections run in the order below, each inside try/except, each skipped when the time left
(--budget-s) is under its estimate, each writing DIR/<section>.json as soon as it ends; DIR/summary.json
holds the machine and one line per section, printed again at the end.

    section        target                                   what
    b24_compiled   >= 300 images/s                          residual b24 c612 bf16 through train_trial: eager,
                                                            regional compile, whole-net compile, CUDA graphs
    b8_graphs      >= 4000 images/s per trial               residual b8 c64: eager, CUDA graphs (cold and warm
                                                            compile cache), regional; a compiled trial stopped
                                                            and resumed; what "auto" picks
    memory         within 15% for >= 6 configs              bench memory: b8 c64 .. b24 c712 at batch 16 and 64
    packed_rung    no OOM; aggregate vs one per GPU         a first rung of small configs packed by the memory
                                                            model's fractions, as concurrent processes

Each compiled row reports `compile_seconds` (the trainer's own figure, first epoch) and `images_per_s`
(median of the epochs after it); `speedup_vs_eager` is the ablation and `val_mse_vs_eager` the largest
relative difference of its val/mse per epoch from eager's (same seed and data). A missed target adds a
torch.profiler table of the best variant to its section.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from search.bench import gpu as gpu_bench


@dataclass(frozen=True)
class Sizes:
    big: tuple[int, int] = (24, 612)
    small: tuple[int, int] = (8, 64)
    big_images: int = 320  # per timed epoch at b24 c612 (20 steps of 16)
    small_images: int = 2048  # b8 c64 at 4000 images/s: half a second per epoch
    rounds: int = 3
    big_modes: tuple[str, ...] = ("", "regional", "default", "reduce-overhead")
    small_modes: tuple[str, ...] = ("", "reduce-overhead", "reduce-overhead", "regional")  # twice: warm cache
    memory_configs: tuple[tuple[int, int], ...] = ((8, 64), (8, 256), (16, 128), (16, 384), (24, 612), (24, 712))
    memory_batches: tuple[int, ...] = (16, 64)
    memory_images: tuple[int, int] = (2048, 64)  # train and val images held on the device
    memory_eval_256: tuple[tuple[int, int], ...] = ((8, 64), (24, 612))  # again with 256 val images
    # Three lrs of the smallest net (the grid has four per net: the compile cache serves the later ones)
    # and the next depth; under "auto" all four train in CUDA graphs.
    rung: tuple[tuple[int, int, float], ...] = ((8, 64, 1e-4), (8, 64, 7.5e-5), (8, 64, 5e-5), (16, 64, 1e-4))
    rung_images: tuple[int, int, int] = (2048, 64, 1024)  # train and val held, images per rung epoch
    profile_steps: int = 8
    profile_always: bool = False  # profile the best variant even when it meets the target (the smoke)


# On CPU one cold compile costs ~15 s (inductor's first use in a process); the smoke's small net has
# the big one's shape, so its regional rows are the warm-cache path.
SMOKE = Sizes(big=(1, 8), small=(1, 8), big_images=16, small_images=16, rounds=1, big_modes=("", "regional"),
              small_modes=("", "regional", "regional"), memory_configs=((1, 8), (2, 16)), memory_batches=(2, 4),
              memory_images=(16, 4), memory_eval_256=((1, 8),), rung=((1, 8, 1e-3), (1, 4, 1e-3)),
              rung_images=(32, 4, 16), profile_steps=2, profile_always=True)

ESTIMATE_S = {"b24_compiled": 130, "b8_graphs": 70, "memory": 75, "packed_rung": 110}  # H100 seconds
TARGETS = {"b24_compiled": 300.0, "b8_graphs": 4000.0}
LABELS = {"": "eager", "regional": "regional compile", "default": "whole-net compile",
          "reduce-overhead": "CUDA graphs (whole net)"}


class Run(gpu_bench.Run):
    """gpu_bench's runner with this script's estimates and summary lines."""
    wanted: frozenset[str] = frozenset(ESTIMATE_S)  # the sections this run will try

    def spare(self, section: str) -> float:
        """Seconds this section may use and still leave the later sections their estimates."""
        names = [n for n, _ in SECTIONS]
        return self.left() - sum(ESTIMATE_S[n] for n in names[names.index(section) + 1:] if n in self.wanted)

    def section(self, name: str, fn, smoke: bool) -> None:
        if not smoke and self.left() < ESTIMATE_S[name]:
            print(f"[skip] {name}: {self.left():.0f} s left, needs about {ESTIMATE_S[name]} s", flush=True)
            self.summary.append({"section": name, "status": "skipped (budget)"})
            self.write_summary()
            return
        super().section(name, fn, smoke=True)  # the budget was checked above
        if name in self.results and "error" not in self.results[name]:
            self.summary[-1].update(headline(name, self.results[name]))
            self.write_summary()


def _trial(run: Run, which: str, mode: str, planned_epochs: int | None = None):
    """(spec, fast paths, TrialConfig, data) of the timed trial of `which` ("big" or "small")."""
    from search.bench.train import VAL_IMAGES, synthetic_data, trial_config
    from sr_core.fastpaths import FastPaths
    spec = run.spec(which)
    config = trial_config(spec)
    if planned_epochs:
        config = dataclasses.replace(config, epochs=planned_epochs, patience=planned_epochs)
    return spec, FastPaths(compile=mode), config, synthetic_data(spec.epoch_images, VAL_IMAGES, spec.seed)


def trial_row(run: Run, which: str, mode: str, label: str, planned_epochs: int | None = None) -> dict:
    """train_trial with `mode` (a FastPaths.compile value): its rate after epoch 1, compile time, memory.
    With `planned_epochs`, the trial is the study's length and stopped after the timed epochs."""
    from sr_core.compilation import resolve
    from sr_core.train import train_trial
    spec, fast, config, data = _trial(run, which, mode, planned_epochs)
    device = torch.device(run.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    reports: list[dict] = []
    result = train_trial(config, data, device=device, fast_paths=fast,
                         on_epoch=lambda r: reports.append(r) or r["epoch"] <= spec.rounds)
    row = {"variant": label, "compile": mode,
           "resolved": resolve(fast, device, config, spec.epoch_images).compile, "status": result.status}
    if len(reports) < 2 or result.status not in ("completed", "pruned"):
        return {**row, "error": f"trial {result.status}: {result.reason}"}
    rates = [r["images_per_s"] for r in reports[1:]]
    row.update(images_per_s=statistics.median(rates), images_per_s_each=rates,
               compile_seconds=reports[0].get("compile_seconds", 0.0), first_epoch_s=reports[0]["epoch_seconds"],
               val_mse_each=[h["val/mse"] for h in result.history])
    if device.type == "cuda":
        row["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return row


def _variants(run: Run, name: str, which: str, modes: tuple[str, ...], row_s: float) -> dict:
    """Each compile mode in turn (skipped when the section's time is spent), the ablation against eager,
    the target, and a profile of the best variant when the target is missed."""
    from search.bench.train import profile_trainer
    from sr_core.fastpaths import FastPaths
    rows = []
    for i, mode in enumerate(modes):
        label = LABELS.get(mode, mode) + (" again (warm compile cache)" if mode in modes[:i] else "")
        if rows and run.spare(name) < row_s:
            rows.append({"variant": label, "skipped": "budget"})
            continue
        try:
            rows.append(trial_row(run, which, mode, label))
        except Exception as exc:  # one variant failing must not lose the others
            rows.append({"variant": label, "error": repr(exc)[:300]})
    eager = rows[0].get("images_per_s")
    for row in rows:
        if eager and row.get("images_per_s"):
            row["speedup_vs_eager"] = row["images_per_s"] / eager
            row["val_mse_vs_eager"] = _max_rel_diff(row["val_mse_each"], rows[0]["val_mse_each"])
    timed = [r for r in rows if r.get("images_per_s")]
    best = max(timed, key=lambda r: r["images_per_s"], default=None)
    out = {"spec": dataclasses.asdict(run.spec(which)), "rows": rows, "target_images_per_s": TARGETS[name],
           "best": best and best["variant"], "best_images_per_s": best and best["images_per_s"]}
    out["target_met"] = bool(best) and best["images_per_s"] >= TARGETS[name]
    if best and (run.sizes.profile_always or not out["target_met"]) and run.spare(name) > 15:
        out["profile"] = profile_trainer(run.spec(which), FastPaths(compile=best["compile"]),
                                         steps=run.sizes.profile_steps, rows=25)
    return out


def _max_rel_diff(got: list[float], want: list[float]) -> float:
    return max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(got, want))


class _Stopped(BaseException):
    """Raised from a report, as a killed process or a paused Tune trial stops the training thread."""


def resume_row(run: Run, which: str, reference: dict) -> dict:
    """`reference`'s trial stopped at a report and resumed from its checkpoint folder in this process (a
    retry in a reused actor), against the uninterrupted run. On a GPU not necessarily bit for bit:
    cudnn.benchmark may pick other kernels in the new session."""
    from sr_core.train import train_trial
    spec, fast, config, data = _trial(run, which, reference["compile"])
    stop_at, folder = (spec.rounds + 1) // 2, Path(tempfile.mkdtemp(prefix="sr-resume-"))

    def stop(report: dict) -> bool:
        if report["epoch"] == stop_at:
            raise _Stopped
        return True

    reports: list[dict] = []
    try:
        try:
            train_trial(config, data, device=run.device, checkpoint_dir=folder, fast_paths=fast, on_epoch=stop)
        except _Stopped:
            pass
        result = train_trial(config, data, device=run.device, checkpoint_dir=folder, fast_paths=fast,
                             on_epoch=lambda r: reports.append(r) or True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    got = [h["val/mse"] for h in result.history]
    return {"variant": reference["variant"] + ", stopped and resumed", "status": result.status,
            "resumed_epochs": [r["epoch"] for r in reports], "val_mse_each": got,
            "compile_seconds": reports[0].get("compile_seconds") if reports else None,
            "exact": got == reference["val_mse_each"], "max_rel_diff": _max_rel_diff(got, reference["val_mse_each"])}


def b24_compiled(run: Run) -> dict:
    return _variants(run, "b24_compiled", "big", run.sizes.big_modes, row_s=45)


def b8_graphs(run: Run) -> dict:
    out = _variants(run, "b8_graphs", "small", run.sizes.small_modes, row_s=20)
    compiled = next((r for r in out["rows"][1:] if r.get("val_mse_each")), None)
    if compiled and run.spare("b8_graphs") > 25:  # checkpoint resume of the compiled trial, on this device
        out["resume"] = resume_row(run, "small", compiled)
    if run.spare("b8_graphs") > 20:  # what the default picks for a study-length trial, end to end
        out["auto_study_trial"] = trial_row(run, "small", "auto", "auto, a 75-epoch trial", planned_epochs=75)
    return out


def memory(run: Run) -> dict:
    from search.bench.memory import bench_memory
    sizes, deadline = run.sizes, time.monotonic() + max(0.0, run.spare("memory"))
    out = bench_memory(sizes.memory_configs, sizes.memory_batches, *sizes.memory_images, device=run.device,
                       deadline=deadline)
    # The study's own eval batch (1250 val images: batches of 256) for the smallest and the best net.
    out["eval_256"] = bench_memory(sizes.memory_eval_256, sizes.memory_batches[:1], sizes.memory_images[0], 256,
                                   device=run.device, deadline=deadline)
    return out


def packed_rung(run: Run) -> dict:
    from search.bench.packing import compare, plan
    train, val, epoch_images = run.sizes.rung_images
    device_bytes = (torch.cuda.get_device_properties(0).total_memory if run.device.startswith("cuda")
                    else 80 * 2 ** 30)  # on CPU: as if an 80 GB GPU (the fractions only)
    jobs = plan(run.sizes.rung, device_bytes, train, val, epoch_images)
    return compare(jobs, device=run.device, data_sizes=(train, val), epoch_images=epoch_images,
                   timeout_s=max(60.0, run.spare("packed_rung")))


SECTIONS = [("b24_compiled", b24_compiled), ("b8_graphs", b8_graphs), ("memory", memory),
            ("packed_rung", packed_rung)]


def headline(name: str, r: dict) -> dict:
    """The few figures of a section worth its summary line."""
    if name in TARGETS:
        line = {"best": r["best"], "images_per_s": r["best_images_per_s"], "target_met": r["target_met"]}
        if "resume" in r:
            line["resume"] = {k: r["resume"].get(k) for k in ("status", "exact", "max_rel_diff")}
        line.update({x["variant"]: {k: round(x[k], 1) for k in ("images_per_s", "compile_seconds") if k in x}
                     for x in r["rows"]})
        return line
    if name == "memory":
        cal = r["calibration"]
        return {"within_15pct": cal["within_tolerance"], "judged": cal["judged"],
                "median_ratio": cal.get("median_ratio"),
                "steady_within_15pct": r["calibration_steady"]["within_tolerance"], "note": r.get("note")}
    if name == "packed_rung":
        return {"fractions": [j["fraction"] for j in r["jobs"]], "speedup": r.get("speedup"),
                "oom": r["packed"].get("oom"), "statuses": r["packed"].get("statuses"),
                "packed_images_per_s": r["packed"].get("aggregate_images_per_s"),
                "one_at_a_time_images_per_s": r["one_at_a_time"].get("aggregate_images_per_s")}
    return {}


OPTIONS = (("--out", dict(required=True, type=Path, help="folder for one JSON per section")),
           ("--smoke", dict(action="store_true", help="tiny sizes, on CPU unless --device says otherwise")),
           ("--device", dict(help="default: cuda when available (cpu with --smoke)")),
           ("--budget-s", dict(type=float, default=float(sum(ESTIMATE_S.values())),
                               help="stop starting sections after this (default: the sum of their estimates)")),
           ("--only", dict(help=f"comma-separated sections of {[n for n, _ in SECTIONS]} (default: all)")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.bench.gpu_targets", description=__doc__.split("\n\n")[0])
    for flag, options in OPTIONS:
        parser.add_argument(flag, **options)
    args = parser.parse_args(argv)
    from search.bench.output import envelope
    from sr_core.compilation import use_node_compile_cache
    device = args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    use_node_compile_cache(tempfile.mkdtemp(prefix="sr-compile-cache-"))  # cold: compile times are measured
    run = Run(args.out, SMOKE if args.smoke else Sizes(), device, args.budget_s)
    run.wanted = frozenset(args.only.split(",")) if args.only else frozenset(n for n, _ in SECTIONS)
    unknown = run.wanted - {n for n, _ in SECTIONS}
    if unknown:
        parser.error(f"--only: unknown sections {sorted(unknown)}; known: {[n for n, _ in SECTIONS]}")
    run.envelope = envelope("gpu_compile_memory", device, sys.argv)
    run.write_summary()
    for name, fn in SECTIONS:
        if name in run.wanted:
            run.section(name, fn, smoke=args.smoke)
    print("\nsummary (details in one JSON per section):")
    for line in run.summary:
        print("  " + str(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
