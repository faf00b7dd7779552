"""Train one config on the embedded set for E epochs (no Ray), then its gain over bicubic on the photos
from outside scikit-image, per LR kernel and per photo: the measurements behind the demo's [final] step
(docs/demo-design.md, section 8).

    PYTHONPATH=. python docs/demo-design/final_step.py residual 4 32 1.5e-3 60 [--rgb-permute] [--threads 1]
"""
import argparse
import json
import time

import torch

from sr_core.data import load_cached, prepare_dataset
from sr_core.generalise import generalisation, outside_patches
from sr_core.models import build_model
from sr_core.train import TrialConfig, train_trial


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("arch"), p.add_argument("blocks", type=int), p.add_argument("channels", type=int)
    p.add_argument("lr", type=float), p.add_argument("epochs", type=int)
    p.add_argument("--rgb-permute", action="store_true"), p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="sr-runs/data")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data = load_cached(prepare_dataset("embedded", a.cache))
    config = TrialConfig(arch=a.arch, blocks=a.blocks, channels=a.channels, lr=a.lr, eta_min=1e-4, epochs=a.epochs,
                         batch_size=4, grad_clip=1.0, patience=a.epochs, epoch_samples=0, rgb_permute=a.rgb_permute)
    t0 = time.time()
    result = train_trial(config, data, device="cpu",
                         on_epoch=lambda r: print(f"{time.time() - t0:6.0f}s epoch {r['epoch']} "
                                                  f"val/psnr {r['val/psnr']:.2f}", flush=True) or True)
    model = build_model(a.arch, a.blocks, a.channels)
    model.load_state_dict(result.weights)
    hr, names = outside_patches()
    out = {"val_psnr": result.best["val/psnr"], "best_epoch": result.best["epoch"],
           "outside": {k: round(v.gain_db, 3) for k, v in generalisation(model, hr).items()}}
    for photo in ("china", "flower", "grace_hopper"):
        idx = [i for i, n in enumerate(names) if n.startswith(photo)]
        out[photo] = {k: round(v.gain_db, 3) for k, v in generalisation(model, hr[idx]).items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
