"""`gpus_per_trial = "auto"`: each trial's GPU fraction from its predicted memory and compute share.

Ray's fractional GPUs are bookkeeping only (ray-project/ray#37574): nothing stops four trials given a
quarter each from needing more memory than the GPU has. So the fraction comes from
`sr_core.memory` (predicted peak of the config at its batch, plus the allocator's reserve and a CUDA
context per process) and `sr_core.gpu_busy` (how busy one trial keeps the GPU): small configs pack up
to 8 to a GPU, big ones get a whole one (`sr_core.memory.gpu_fraction`). A config whose one trial
does not fit the device at all is reported before anything runs and skipped: its trial closes as
`oom` with the prediction as its reason, without training.

The memory of one GPU is `[resources] gpu_memory_gib` when the study states it (a cluster planned on
paper, or a test with fake GPUs), else what the device measurement task found on a GPU node.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sr_core.archs import as_params
from sr_core.memory import GIB, fits, fraction_for, predict_trial
from sr_core.trial_config import TrialConfig

AUTO = "auto"


@dataclass(frozen=True)
class Packing:
    """Per config shape (arch, blocks, channels, batch): its GPU fraction, and whether it fits."""
    device_bytes: int
    fractions: dict[tuple, float]
    too_big: dict[tuple, str]  # shape -> why it does not fit (sr_core.memory.fits)

    def fraction(self, config: dict[str, Any]) -> float:
        return self.fractions.get(shape_of(config), 1.0)

    def lines(self) -> list[str]:
        counts: dict[float, int] = {}
        for key, f in self.fractions.items():
            if key not in self.too_big:
                counts[f] = counts.get(f, 0) + 1
        packed = ", ".join(f"{n} at 1/{round(1 / f)} GPU" if f < 1 else f"{n} at a whole GPU"
                           for f, n in sorted(counts.items()))
        lines = [f"packing      : gpus_per_trial auto on {self.device_bytes / GIB:.1f} GiB GPUs: {packed or 'none'}"]
        lines += [f"skipped      : {reason}" for reason in self.too_big.values()]
        return lines


def shape_of(config: dict[str, Any]) -> tuple:
    return (str(config["arch"]), int(config["blocks"]), int(config["channels"]), int(config["batch_size"]),
            as_params(config.get("arch_params") or {}))


def plan_packing(configs: list[TrialConfig], device_bytes: int, train_images: int, val_images: int) -> Packing:
    """The fraction of every distinct shape among `configs` (each a TrialConfig)."""
    fractions, too_big = {}, {}
    for config in configs:
        key = shape_of(config.__dict__)
        if key in fractions:
            continue
        prediction = predict_trial(config, train_images=train_images, val_images=val_images)
        ok, reason = fits(prediction, device_bytes)
        fractions[key] = fraction_for(prediction, device_bytes) if ok else 1.0
        if not ok:
            too_big[key] = reason
    return Packing(device_bytes, fractions, too_big)


def resources_fn(cpu: float, packing: Packing) -> Callable[[dict], Any]:
    """What `tune.with_resources` calls per trial config: one bundle of `cpu` CPUs and its fraction."""
    from ray import tune

    def resources(config: dict) -> tune.PlacementGroupFactory:
        return tune.PlacementGroupFactory([{"CPU": cpu, "GPU": packing.fraction(config)}])
    return resources
