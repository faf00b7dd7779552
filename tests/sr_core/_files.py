"""Image files for the data tests: random PNGs in the layouts sr_core.data reads."""
import numpy as np
import torch
from PIL import Image


def quiet(line):
    """A progress callback that drops the lines."""


def rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path, array):
    """PNG with the mode Pillow infers: HxW uint8 -> L, HxW uint16 -> I;16, HxWx4 -> RGBA."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def paired_root(tmp_path, n_train=3, n_val=2, n_test=2):
    """ROOT/{train,val}/{lr,hr}/ (+ test/lr/ when n_test) holding random PNGs of the right sizes."""
    root = tmp_path / "paired"
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for i in range(n):
            name = f"{split}{i:02d}"
            save(root / split / "lr" / f"{name}.png", rgb(32, 32, i))
            if split != "test":
                save(root / split / "hr" / f"{name}.png", rgb(128, 128, 100 + i))
    return root


def hr_only_root(tmp_path, sizes):
    root = tmp_path / "photos"
    for i, (h, w) in enumerate(sizes):
        save(root / f"photo{i}.png", rgb(h, w, i))
    return root


def chw(path):
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
