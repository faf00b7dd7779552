"""A first rung packed on one GPU by the memory model's fractions, against one trial at a time.

What Ray does with `gpus_per_trial = fraction`, done with plain processes (no Ray on the GPU box):
`workers` persistent processes (Ray's reused actors) train the rung's trials from one queue in order;
a trial starts once an idle worker exists and the fractions of the running trials leave room for its
own (first come, first served, as Tune hands out trials from a grid). Every trial is the study's
real one (75 epochs planned, so "auto" compiles as it would in the study) stopped after
`rung_epochs` by its report, as the first rung stops it. Each mode gets its own fresh node-local
compile cache, shared by its workers, so neither profits from the other's compiles.

Reported per mode: wall seconds from the common start, aggregate images/s, and per trial its
fraction, status (an out-of-memory would show as `oom`), compile seconds and peak memory. Needs
torch, numpy, pillow; never Ray, Optuna or MLflow.
"""
from __future__ import annotations

import dataclasses
import os
import queue
import tempfile
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RungJob:
    blocks: int
    channels: int
    lr: float
    fraction: float = 1.0
    batch_size: int = 16


def plan(configs, device_bytes: int, train_images: int, val_images: int, epoch_images: int,
         epochs: int = 75) -> list[RungJob]:
    """The fraction "auto" gives each (blocks, channels, lr): memory model AND compute share."""
    import torch

    from sr_core.compilation import resolve
    from sr_core.fastpaths import FastPaths
    from sr_core.memory import fraction_for, predict_trial
    jobs = []
    for blocks, channels, lr in configs:
        config = _config(RungJob(blocks, channels, lr), epochs, epoch_images)
        pred = predict_trial(config, FastPaths(), train_images=train_images, val_images=val_images)
        graphs = resolve(FastPaths(), torch.device("cuda"), config, epoch_images).compile == "reduce-overhead"
        jobs.append(RungJob(blocks, channels, lr, fraction_for(pred, device_bytes, cuda_graphs=graphs)))
    return jobs


def _config(job: RungJob, epochs: int, epoch_images: int):
    from sr_core.train import TrialConfig
    return TrialConfig(arch="residual", blocks=job.blocks, channels=job.channels, lr=job.lr, eta_min=1e-7,
                       epochs=epochs, batch_size=job.batch_size, patience=epochs, epoch_samples=epoch_images)


def _worker(index: int, inbox, outbox, device: str, cache: str, data_sizes: tuple[int, int],
            settings: tuple[int, int, int, int]) -> None:
    """One reused process: trains the jobs it is given until it gets None."""
    import torch

    from search.bench.train import synthetic_data
    from sr_core.compilation import use_node_compile_cache
    from sr_core.fastpaths import FastPaths
    from sr_core.train import train_trial
    use_node_compile_cache(cache)
    data = synthetic_data(*data_sizes)
    epochs, epoch_images, rung_epochs, threads = settings
    cuda = device.startswith("cuda")
    if threads:  # CPU: the processes share the cores (Ray gives each trial its CPUs)
        torch.set_num_threads(threads)
    if cuda:
        torch.cuda.init()
    outbox.put({"ready": True})
    while (job := inbox.get()) is not None:
        reports: list[dict] = []
        row = {"worker": index, "job": dataclasses.asdict(job), "start": time.time()}
        try:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            result = train_trial(_config(job, epochs, epoch_images), data, device=device, fast_paths=FastPaths(),
                                 on_epoch=lambda r: reports.append(r) or r["epoch"] < rung_epochs)
            row.update(status=result.status, reason=result.reason, epochs=result.epochs,
                       images=epoch_images * result.epochs, images_per_s=[r["images_per_s"] for r in reports],
                       compile_seconds=reports[0].get("compile_seconds") if reports else None)
            if cuda:
                row.update(max_allocated_gib=torch.cuda.max_memory_allocated(device) / 2 ** 30,
                           max_reserved_gib=torch.cuda.max_memory_reserved(device) / 2 ** 30)
                torch.cuda.empty_cache()  # as the trainable does, for the next trial in this process
        except Exception as exc:
            row.update(status="error", reason=repr(exc)[:300], images=0)
        row["end"] = time.time()
        outbox.put(row)


def run_rung(jobs: list[RungJob], *, device: str, workers: int, data_sizes: tuple[int, int], epoch_images: int,
             rung_epochs: int = 2, epochs: int = 75, timeout_s: float = 600) -> dict:
    """Train `jobs` through `workers` processes as the fractions allow; the figures of the run."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")  # a fresh interpreter each: CUDA cannot be forked
    cache = tempfile.mkdtemp(prefix="sr-rung-cache-")
    inboxes, outbox = [ctx.Queue() for _ in range(workers)], ctx.Queue()
    threads = 0 if device.startswith("cuda") else max(1, (os.cpu_count() or 1) // workers)
    settings = (epochs, epoch_images, rung_epochs, threads)
    procs = [ctx.Process(target=_worker, args=(i, inbox, outbox, device, cache, data_sizes, settings), daemon=True)
             for i, inbox in enumerate(inboxes)]
    for p in procs:
        p.start()
    deadline, rows, start = time.monotonic() + timeout_s, [], time.time()
    try:
        for _ in procs:
            _next(outbox, procs, deadline)  # each one ready: data built, CUDA up
        start = time.time()
        rows = _schedule(jobs, inboxes, lambda: _next(outbox, procs, deadline))
    except (RuntimeError, TimeoutError) as exc:
        rows = [{"job": dataclasses.asdict(j), "status": "lost", "reason": str(exc)} for j in jobs]
    finally:
        for inbox in inboxes:
            inbox.put(None)
        for p in procs:
            p.join(timeout=20)
            if p.is_alive():
                p.terminate()
    done = [r for r in rows if "start" in r]
    out = {"workers": workers, "jobs": len(jobs), "rows": rows,
           "statuses": sorted({r.get("status", "lost") for r in rows}),
           "oom": sum(r.get("status") == "oom" for r in rows)}
    if len(done) == len(jobs):
        wall = max(r["end"] for r in done) - start
        out.update(wall_s=wall, aggregate_images_per_s=sum(r["images"] for r in done) / wall)
    else:
        out["error"] = f"{len(jobs) - len(done)} of {len(jobs)} trials did not report (timeout or a dead worker)"
    return out


def _next(outbox, procs, deadline: float) -> dict:
    """The next message of any worker; RuntimeError when one died, TimeoutError past the deadline."""
    while time.monotonic() < deadline:
        try:
            return outbox.get(timeout=1.0)
        except queue.Empty:
            dead = [p.exitcode for p in procs if not p.is_alive()]
            if dead:
                raise RuntimeError(f"a worker process died (exit codes {dead})") from None
    raise TimeoutError("the rung did not finish in time")


def _schedule(jobs: list[RungJob], inboxes, next_row) -> list[dict]:
    """First come, first served under the fractions' capacity of 1 GPU; returns the rows in job order."""
    pending, idle, running, rows = list(enumerate(jobs)), list(range(len(inboxes))), {}, {}
    while pending or running:
        while pending and idle and sum(j.fraction for _, j in running.values()) + pending[0][1].fraction <= 1 + 1e-9:
            index, job = pending.pop(0)
            worker = idle.pop(0)
            running[worker] = (index, job)
            inboxes[worker].put(job)
        row = next_row()
        rows[running.pop(row["worker"])[0]] = row
        idle.append(row["worker"])
    return [rows[i] for i in range(len(jobs))]


def compare(jobs: list[RungJob], *, device: str, data_sizes: tuple[int, int], epoch_images: int,
            rung_epochs: int = 2, timeout_s: float = 600) -> dict:
    """The rung packed by its fractions, then the same trials one at a time (fraction 1, one worker)."""
    workers = max(1, min(len(jobs), round(1 / min(j.fraction for j in jobs))))
    common = dict(device=device, data_sizes=data_sizes, epoch_images=epoch_images, rung_epochs=rung_epochs,
                  timeout_s=timeout_s / 2)
    packed = run_rung(jobs, workers=workers, **common)
    alone = run_rung([dataclasses.replace(j, fraction=1.0) for j in jobs], workers=1, **common)
    out = {"jobs": [dataclasses.asdict(j) for j in jobs], "packed": packed, "one_at_a_time": alone}
    if packed.get("aggregate_images_per_s") and alone.get("aggregate_images_per_s"):
        out["speedup"] = packed["aggregate_images_per_s"] / alone["aggregate_images_per_s"]
    return out
