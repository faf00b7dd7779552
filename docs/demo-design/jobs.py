"""Job lists of the demo-design measurements (see docs/demo-design.md).

    PYTHONPATH=. python docs/demo-design/jobs.py SET > jobs.json     # SET: levers | grid
"""
import json
import sys

BASE = {"arch": "residual", "blocks": 4, "channels": 16, "lr": 3e-3, "eta_min": 1e-4, "epochs": 10,
        "batch_size": 8, "patience": 100, "epoch_samples": 432, "seed": 0}


def job(name, lr_kernels="mix", bicubic_skip=True, train_exclude=(), **config):
    return {"name": name, "lr_kernels": lr_kernels, "bicubic_skip": bicubic_skip,
            "train_exclude": list(train_exclude), "config": {**BASE, **config}}


def levers() -> list[dict]:
    """Residual (4,16), 10 epochs x 432 images, batch 8, lr 3e-3 and one change at a time."""
    return [job("base"), job("kernels_srsearch", lr_kernels="sr-search"), job("epochs20", epochs=20),
            job("blocks8", blocks=8), job("lr1.5e-3", lr=1.5e-3), job("lr6e-3", lr=6e-3),
            job("bs16", batch_size=16), job("bs4", batch_size=4), job("channels32", channels=32)]


def data_levers() -> list[dict]:
    """Same model and images seen as `base`: without the retina's 192 train patches (18 epochs of the
    240 left), and with every train LR from the OpenCV-style kernel (its ceiling on that kernel)."""
    return [job("noretina", train_exclude=("retina",), epochs=18, epoch_samples=240),
            job("kernels_opencv", lr_kernels="opencv")]


def grid(epochs: int = 6, batch_size: int = 8, lr: float = 3e-3, archs=("residual", "refiner")) -> list[dict]:
    """The demo grid candidate: both archs x blocks {1,2,4} x channels {4,8,16}, one schedule."""
    sizes = [(a, b, c) for a in archs for b in (1, 2, 4) for c in (4, 8, 16)]
    return [job(f"g_e{epochs}_bs{batch_size}_{a}_b{b}_c{c}_lr{lr:g}", arch=a, blocks=b, channels=c,
                epochs=epochs, batch_size=batch_size, lr=lr, patience=epochs) for a, b, c in sizes]


def budget() -> list[dict]:
    """What the best demo config needs to beat bicubic by 0.8 dB outside: residual (4,16), batch 4."""
    return [job(f"budget_bs4_e{e}", batch_size=4, epochs=e) for e in (12, 20)]


SETS = {"levers": levers, "budget": budget, "data": data_levers, "grid": grid,
        "grid_bs4_residual": lambda: grid(batch_size=4, archs=("residual",)),
        "grid_bs4_refiner": lambda: grid(batch_size=4, archs=("refiner",))}

if __name__ == "__main__":
    print(json.dumps(SETS[sys.argv[1]](), indent=1))
