"""A real CUDA out-of-memory through `train_trial`, for the GPU machine (no Ray, Optuna or MLflow):

    PYTHONPATH=. python3 -m search.bench.gpu_oom [--batch 512]

A refiner b24 c712 at batch 512 (far beyond an 80 GB card) must end as status `oom` with a one-line
reason, give its memory back, and leave the process able to train: a residual b8 c64 trial right
after must complete. Prints one JSON object."""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from search.bench.train import synthetic_data
from sr_core.train import TrialConfig, train_trial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.bench.gpu_oom", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=512, help="batch of the too-big trial (default 512)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA device: this checks a real GPU out-of-memory", file=sys.stderr)
        return 2
    data = synthetic_data(512, 64)
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "total_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    trials = [("too_big", TrialConfig(arch="refiner", blocks=24, channels=712, epochs=1, batch_size=args.batch,
                                      lr=1e-4, eta_min=0)),
              ("after", TrialConfig(arch="residual", blocks=8, channels=64, epochs=1, batch_size=16, lr=1e-4,
                                    eta_min=0))]
    for name, config in trials:
        t0 = time.perf_counter()
        result = train_trial(config, data, device="cuda")
        torch.cuda.synchronize()
        out[name] = {"config": config.run_name, "batch": config.batch_size, "status": result.status,
                     "reason": result.reason, "epochs": result.epochs, "seconds": round(time.perf_counter() - t0, 1),
                     "allocated_after_gib": round(torch.cuda.memory_allocated() / 2**30, 3),
                     "max_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
                     "val_psnr": result.best.get("val/psnr") if result.best else None}
        torch.cuda.reset_peak_memory_stats()
    print(json.dumps(out, indent=2))
    return 0 if out["too_big"]["status"] == "oom" and out["after"]["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
