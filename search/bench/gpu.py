"""The GPU benchmark for one short lease: every figure BENCHMARKS.md needs, in about 6 minutes.

    PYTHONPATH=. python3 -m search.bench.gpu --out DIR            # on the GPU machine
    PYTHONPATH=. python3 -m search.bench.gpu --out DIR --smoke    # tiny sizes on CPU: checks the script

Needs torch, numpy, pillow, scikit-image; never Ray, Optuna or MLflow. Sections run in the order
below, each inside try/except, each skipped when the time left (--budget-s) is under its estimate,
each (re)writing its file DIR/<file>.json as soon as it ends; DIR/summary.json holds the machine and
one line per section, and the same summary is printed last. Seven files in all.

    section          file              what
    a_train_b24      a_train_b24       residual b24 c612 batch 16, all fast paths, beside the plain fp32 loop
    e_profile_b24    e_profile_b24     torch.profiler: top kernels of a few b24 c612 steps (table inside)
    c_checkpoint     c_checkpoint      checkpoint cost at b24 c612, background and synchronous, vs 7000 images
    b_small          b_small           residual b8 c64: ours vs plain; launch-bound or not (GPU busy vs wall)
    d_packing        d_packing         aggregate images/s of 1, 2 and 4 concurrent b8 c64 trial processes
    b_compile        b_small           ["compile"]: b8 c64 under torch.compile, compile time included
    a_ablation       a_train_b24       ["ablation"]: b24 c612 with each fast path off, one at a time
    f_data           f_data            bench data: our pipeline vs PIL + DataLoader
    g_ablation_small g_ablation_small  b8 c64 with each fast path off, one at a time
    g_batch_b24      g_batch_b24       b24 c612 at batch 32 and 64
    g_graphs_small   g_graphs_small    b8 c64 with CUDA graphs (compile reduce-overhead): images/s, GPU busy
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Sizes:
    big: tuple[int, int] = (24, 612)  # (blocks, channels) of the study's best config
    small: tuple[int, int] = (8, 64)
    big_images: int = 320  # per timed epoch at b24 c612 (20 steps of 16)
    small_images: int = 512
    rounds: int = 3
    ckpt_images: int = 1024  # epochs long enough that a background write can overlap one
    profile_steps: int = 8
    packing: tuple[int, ...] = (1, 2, 4)
    data_images: int = 2000
    gemm_seconds: float = 1.0


SMOKE = Sizes(big=(1, 8), small=(1, 8), big_images=16, small_images=16, rounds=1, ckpt_images=16,
              profile_steps=2, packing=(1, 2), data_images=32, gemm_seconds=0.1)

# Sections that add to another section's file (under a key) instead of writing their own.
FILES = {"a_ablation": ("a_train_b24", "ablation"), "b_compile": ("b_small", "compile")}

# Rough seconds each section needs on an H100 (used to skip what no longer fits the budget).
ESTIMATE_S = {"a_train_b24": 35, "e_profile_b24": 15, "c_checkpoint": 60, "b_small": 25, "d_packing": 75,
              "a_ablation": 90, "b_compile": 100, "f_data": 40,
              "g_ablation_small": 60, "g_batch_b24": 40, "g_graphs_small": 45}


class Run:
    def __init__(self, out: Path, sizes: Sizes, device: str, budget_s: float):
        self.out, self.sizes, self.device = out, sizes, device
        self.deadline = time.monotonic() + budget_s
        self.summary: list[dict] = []
        self.results: dict[str, dict] = {}  # by section
        self.files: dict[str, dict] = {}  # by file stem: what each JSON file holds
        self.envelope: dict = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def spec(self, which: str, **kw):
        from search.bench.train import TrainSpec
        blocks, channels = getattr(self.sizes, which)
        images = self.sizes.big_images if which == "big" else self.sizes.small_images
        return TrainSpec(blocks=blocks, channels=channels, batch_size=16, images=images,
                         rounds=self.sizes.rounds, device=self.device, **kw)

    def section(self, name: str, fn, smoke: bool) -> None:
        need = 0 if smoke else ESTIMATE_S.get(name, 30)
        if self.left() < need:
            print(f"[skip] {name}: {self.left():.0f} s left, needs about {need} s", flush=True)
            self.summary.append({"section": name, "status": "skipped (budget)"})
            self.write_summary()
            return
        print(f"[run ] {name} ({self.left():.0f} s left)", flush=True)
        t0 = time.monotonic()
        try:
            result, status = fn(self), "ok"
        except Exception as exc:
            result, status = {"error": repr(exc)[:500], "traceback": traceback.format_exc()[-3000:]}, "error"
            print(result["traceback"], file=sys.stderr, flush=True)
        result["section_seconds"] = time.monotonic() - t0
        self.results[name] = result
        stem, key = FILES.get(name, (name, None))
        merged = self.files.setdefault(stem, {})
        merged.update(result) if key is None else merged.__setitem__(key, result)
        (self.out / f"{stem}.json").write_text(json.dumps(merged, indent=2, default=str) + "\n")
        line = {"section": name, "status": status, "seconds": round(result["section_seconds"], 1),
                **headline(name, result)}
        self.summary.append(line)
        self.write_summary()
        print(f"[done] {json.dumps(line, default=str)}", flush=True)
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def write_summary(self) -> None:
        (self.out / "summary.json").write_text(json.dumps({**self.envelope, "sections": self.summary},
                                                          indent=2, default=str) + "\n")


# -- the sections -------------------------------------------------------------------------------------
def train_b24(run: Run) -> dict:
    from search.bench.train import bench_train
    from sr_core.fastpaths import FastPaths
    return bench_train(run.spec("big"), FastPaths(), plain=True, gemm_seconds=run.sizes.gemm_seconds)


def profile_b24(run: Run) -> dict:
    from search.bench.train import profile_trainer
    from sr_core.fastpaths import FastPaths
    return profile_trainer(run.spec("big"), FastPaths(), steps=run.sizes.profile_steps, rows=30)


def checkpoint_cost(run: Run) -> dict:
    """Seconds the training thread spends on checkpoints per epoch, written in the background and
    synchronously, from the gaps between reports; against the epoch of 7000 images."""
    from search.bench.train import VAL_IMAGES, synthetic_data, trial_config
    from sr_core.fastpaths import FastPaths
    from sr_core.train import train_trial
    spec = dataclasses.replace(run.spec("big"), images=run.sizes.ckpt_images, rounds=2)
    data = synthetic_data(spec.epoch_images, VAL_IMAGES)
    out = {"spec": dataclasses.asdict(spec)}
    for mode in ("none", "background", "synchronous"):
        if run.left() < 20 and mode != "none":
            out[mode] = {"skipped": "budget"}
            continue
        folder = Path(tempfile.mkdtemp(prefix="sr-ckpt-bench-"))
        calls: list[tuple[float, dict]] = []
        try:
            train_trial(trial_config(spec), data, device=run.device,
                        checkpoint_dir=None if mode == "none" else folder,
                        on_epoch=lambda r: calls.append((time.perf_counter(), dict(r))) or True,
                        fast_paths=FastPaths(async_checkpoint=mode == "background", checkpoint_budget=0))
            # Between two reports: the next epoch's training and evaluation (its epoch_seconds) plus
            # everything the training thread did for checkpoints (snapshot, synchronous write, waits).
            gaps = [t1 - t0 - r1["epoch_seconds"] for (t0, _), (t1, r1) in zip(calls, calls[1:])]
            row = {"thread_seconds_per_epoch": gaps, "images_per_s": [r["images_per_s"] for _, r in calls],
                   "epoch_seconds": [r["epoch_seconds"] for _, r in calls],
                   "write_seconds": [r.get("checkpoint/write_seconds") for _, r in calls],
                   "announced": [(r["epoch"], r.get("checkpoint/epoch")) for _, r in calls]}
            if mode != "none":
                row["bytes"] = {p.name: p.stat().st_size for p in folder.glob("*.pt")}
            out[mode] = row
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    ips = (run.results.get("a_train_b24", {}).get("images_per_s")
           or max(out["none"]["images_per_s"][1:] or out["none"]["images_per_s"]))
    epoch_7000 = 7000 / ips
    out["epoch_7000_s"] = epoch_7000
    base = max(out["none"]["thread_seconds_per_epoch"] or [0.0])
    for mode in ("background", "synchronous"):
        row = out.get(mode, {})
        if "thread_seconds_per_epoch" in row:
            steady = row["thread_seconds_per_epoch"][-1] - base  # the first includes pinning the buffers
            write = max(w for w in row["write_seconds"] if w is not None)
            if mode == "background":
                # The thread waited for a write longer than our short epoch; an epoch of 7000 images
                # hides any write shorter than itself. Replace the one wait by the other.
                short = row["epoch_seconds"][-1]
                blocking = max(0.0, steady - max(0.0, write - short)) + max(0.0, write - epoch_7000)
            else:
                blocking = steady  # a synchronous write never hides
            row["write_seconds_max"] = write
            row["thread_seconds_steady"] = steady
            row["thread_seconds_at_7000"] = blocking
            row["fraction_of_7000_epoch"] = blocking / epoch_7000
    return out


def small_loop(run: Run) -> dict:
    """b8 c64 ours vs plain, and whether the GPU waits for the host (launch-bound)."""
    from search.bench.train import bench_train, measure_trainer, profile_trainer
    from sr_core.fastpaths import FastPaths
    spec = run.spec("small")
    out = bench_train(spec, FastPaths(), plain=True, gemm_seconds=run.sizes.gemm_seconds)
    prof = profile_trainer(spec, FastPaths(), steps=max(run.sizes.profile_steps, 8), rows=15)
    out["profile"] = prof
    if "images_per_s" in out and "gpu_busy_ms_per_step" in prof:
        wall_ms = 1e3 * spec.batch_size / out["images_per_s"]
        out["wall_ms_per_step"] = wall_ms
        out["gpu_busy_fraction"] = prof["gpu_busy_ms_per_step"] / wall_ms
        out["launch_bound"] = out["gpu_busy_fraction"] < 0.7
    # Launch-bound steps cost the same at any batch: images/s then grows with the batch.
    out["batch_64"] = measure_trainer(dataclasses.replace(spec, batch_size=64, images=4 * spec.images), FastPaths())
    return out


def packing(run: Run) -> dict:
    from search.bench.train import packed
    from sr_core.fastpaths import FastPaths
    rows = []
    for n in run.sizes.packing:
        if rows and run.left() < 25:
            rows.append({"processes": n, "skipped": "budget"})
            continue
        rows.append(packed(run.spec("small"), FastPaths(), n, timeout_s=max(30.0, min(180.0, run.left()))))
    return {"rows": rows}


def ablation_b24(run: Run) -> dict:
    return _ablation(run, "big", min_left_s=15)


def ablation_small(run: Run) -> dict:
    """b8 c64 with each fast path off, one at a time: which ones cost a launch-bound step time."""
    return _ablation(run, "small", min_left_s=10)


def _ablation(run: Run, which: str, min_left_s: float) -> dict:
    """Each fast path off alone, then all off (the reference), against all on; variants that no
    longer fit the budget are marked skipped."""
    from search.bench.train import measure_trainer
    from sr_core.fastpaths import FastPaths
    spec, fast = run.spec(which), FastPaths()
    names = [n for n in FastPaths.switches() if n != "async_checkpoint"]
    rows = [{"variant": "all fast paths", **measure_trainer(spec, fast)}]
    for label, variant in [(f"without {n}", fast.without(n)) for n in names] + [("reference", FastPaths.reference())]:
        if run.left() < min_left_s:
            rows.append({"variant": label, "skipped": "budget"})
            continue
        try:
            rows.append({"variant": label, **measure_trainer(spec, variant)})
        except Exception as exc:
            rows.append({"variant": label, "error": repr(exc)[:300]})
    full = rows[0].get("images_per_s")
    for row in rows[1:]:
        if full and row.get("images_per_s"):
            row["slowdown_vs_all"] = full / row["images_per_s"]
    return {"rows": rows}


def batch_b24(run: Run) -> dict:
    """b24 c612 at batch 32 and 64: how much of the gap to the GEMM rate is the batch of 16."""
    from search.bench.train import measure_trainer
    from sr_core.fastpaths import FastPaths
    rows = []
    for batch in (32, 64):
        if run.left() < 20:
            rows.append({"batch_size": batch, "skipped": "budget"})
            continue
        spec = dataclasses.replace(run.spec("big"), batch_size=batch, images=run.sizes.big_images * batch // 16)
        rows.append({"batch_size": batch, **measure_trainer(spec, FastPaths())})
    return {"rows": rows}


def profile_small_graphs(run: Run) -> dict:
    """b8 c64 under torch.compile mode reduce-overhead (CUDA graphs): is the GPU still waiting?"""
    from search.bench.train import measure_trainer, profile_trainer
    from sr_core.fastpaths import FastPaths
    spec, fast = run.spec("small"), FastPaths(compile="reduce-overhead")
    out = measure_trainer(spec, fast)
    prof = profile_trainer(spec, fast, steps=16, rows=15)
    out["profile"] = prof
    if "images_per_s" in out and "gpu_busy_ms_per_step" in prof:
        out["gpu_busy_fraction"] = prof["gpu_busy_ms_per_step"] / (1e3 * spec.batch_size / out["images_per_s"])
    return out


def compile_small(run: Run) -> dict:
    from search.bench.train import measure_trainer
    from sr_core.fastpaths import FastPaths
    rows = []  # eager is b_small's own figure; CUDA graphs first, as the remedy for launch-bound steps
    modes = ["reduce-overhead", "default"] if run.device.startswith("cuda") else ["default"]
    for mode in modes:
        if rows and run.left() < 45:
            rows.append({"compile": mode, "skipped": "budget"})
            continue
        try:  # warmup_s of a compiled run is mostly its compile time
            rows.append({"compile": mode, **measure_trainer(run.spec("small"), FastPaths(compile=mode))})
        except Exception as exc:
            rows.append({"compile": mode, "error": repr(exc)[:300]})
    return {"rows": rows}


def data_pipeline(run: Run) -> dict:
    import os

    from search.bench.data import bench_data
    return bench_data(run.sizes.data_images, 16, run.device, workers=min(os.cpu_count() or 1, 8), rounds=2)


# The order is the priority: what the issue asks first, then the extras while time lasts.
SECTIONS = [("a_train_b24", train_b24), ("e_profile_b24", profile_b24), ("c_checkpoint", checkpoint_cost),
            ("b_small", small_loop), ("d_packing", packing), ("b_compile", compile_small),
            ("a_ablation", ablation_b24), ("f_data", data_pipeline), ("g_ablation_small", ablation_small),
            ("g_batch_b24", batch_b24), ("g_graphs_small", profile_small_graphs)]


def headline(name: str, r: dict) -> dict:
    """The few figures of a section worth a line in the summary."""
    pick = lambda d, *keys: {k: (round(d[k], 3) if isinstance(d.get(k), float) else d.get(k)) for k in keys if k in d}
    if "error" in r:
        return {"error": r["error"][:120]}
    if name in ("a_train_b24", "b_small"):
        return {**pick(r, "images_per_s", "speedup", "fraction_of_peak", "fraction_of_gemm", "gemm_tflops",
                       "conv_tflops", "gpu_busy_fraction", "launch_bound"),
                **pick(r.get("ours", {}), "tflops", "plain_images_per_s", "warmup_s", "max_memory_gib")}
    if name == "c_checkpoint":
        return {m: pick(r.get(m, {}), "thread_seconds_steady", "write_seconds_max", "thread_seconds_at_7000",
                        "fraction_of_7000_epoch") for m in ("background", "synchronous")} | pick(r, "epoch_7000_s")
    if name == "d_packing":
        return {f"{x['processes']}p": round(x["aggregate_images_per_s"], 1) if "aggregate_images_per_s" in x
                else x.get("error", x.get("skipped")) for x in r["rows"]}
    if name in ("a_ablation", "g_ablation_small"):
        return {x["variant"]: round(x["images_per_s"], 1) if "images_per_s" in x else "-" for x in r["rows"]}
    if name == "b_compile":
        return {x["compile"]: pick(x, "images_per_s", "warmup_s") for x in r["rows"]}
    if name == "e_profile_b24":
        return pick(r, "gpu_busy_ms_per_step", "wall_ms_per_step_profiled", "kernel_launches_per_step")
    if name == "f_data":
        return pick(r, "speedup", "ours_images_per_s", "pil_images_per_s")
    if name == "g_batch_b24":
        return {f"batch {x['batch_size']}": round(x["images_per_s"], 1) if "images_per_s" in x else "-"
                for x in r["rows"]}
    if name == "g_graphs_small":
        return pick(r, "images_per_s", "warmup_s", "gpu_busy_fraction")
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for one JSON per section")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, on CPU unless --device says otherwise")
    parser.add_argument("--device", help="default: cuda when available (cpu with --smoke)")
    parser.add_argument("--budget-s", type=float, default=360.0, help="stop starting sections after this")
    parser.add_argument("--only", help="comma-separated section names (default: all)")
    parser.add_argument("--big", help="BLOCKS,CHANNELS of the big config (default 24,612; smoke 1,8)")
    parser.add_argument("--ckpt-images", type=int, help="images per epoch in c_checkpoint (default 1024)")
    args = parser.parse_args(argv)
    from search.bench.output import envelope
    device = args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = SMOKE if args.smoke else Sizes()
    if args.big:
        sizes = dataclasses.replace(sizes, big=tuple(int(x) for x in args.big.split(",")))
    if args.ckpt_images:
        sizes = dataclasses.replace(sizes, ckpt_images=args.ckpt_images)
    run = Run(args.out, sizes, device, args.budget_s)
    run.envelope = envelope("gpu_bench", device, sys.argv)
    run.write_summary()
    print(json.dumps({k: run.envelope[k] for k in ("machine", "versions")}, default=str), flush=True)
    wanted = set(args.only.split(",")) if args.only else None
    for name, fn in SECTIONS:
        if wanted is None or name in wanted:
            run.section(name, fn, smoke=args.smoke)
    print("\nsummary (details in one JSON per section):")
    for line in run.summary:
        print("  " + json.dumps(line, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
