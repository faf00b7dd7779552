"""Does a trained model generalise? PSNR gain over bicubic on photos from outside scikit-image, for
LR made by several resize pipelines.

The demo trains and validates on photos bundled with scikit-image. This check upscales photos the
model never saw, from two other packages already installed as dependencies: scikit-learn's sample
images (china.jpg, flower.jpg) and matplotlib's grace_hopper.jpg. Each is cut into non-overlapping
128x128 patches (flat ones dropped, as in training), each patch is downscaled x4 with every kernel of
``sr_core.resize.LR_KERNELS`` (sr-search's, Pillow's, OpenCV-style), and for each kernel we report the
mean per-image PSNR of the model and of bicubic upscaling, and the gain (model - bicubic, in dB).

    python -m sr_core.generalise sr-runs/.../best.pt    # prints a table and JSON

Imports only torch, numpy, PIL and sr_core (plus scikit-learn and matplotlib for their photos):
no Ray, Optuna or MLflow.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from sr_core import metrics, patches
from sr_core.infer import load_model, upscale
from sr_core.pixels import to_float
from sr_core.resize import LR_KERNELS, bicubic_upscale, downscale_with

PHOTOS = ("china", "flower", "grace_hopper")


@dataclass(frozen=True)
class KernelScore:
    """Mean per-image PSNR (dB) over the outside patches whose LR one kernel made."""
    kernel: str
    model_psnr: float
    bicubic_psnr: float
    images: int

    @property
    def gain_db(self) -> float:
        return self.model_psnr - self.bicubic_psnr


def outside_photos() -> dict[str, np.ndarray]:
    """name -> HxWx3 uint8, from scikit-learn and matplotlib (shipped files: no network)."""
    import matplotlib.cbook
    from sklearn.datasets import load_sample_images

    sample = load_sample_images()
    photos = {os.path.splitext(os.path.basename(f))[0]: img for f, img in zip(sample.filenames, sample.images)}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    return {name: photos[name] for name in PHOTOS}


def outside_patches(photos: dict[str, np.ndarray] | None = None) -> tuple[torch.Tensor, tuple[str, ...]]:
    """uint8 [N,3,128,128] non-overlapping, textured patches of the photos, and their names."""
    photos = outside_photos() if photos is None else photos
    cuts, names = [], []
    for name, img in photos.items():
        coords = patches.grid(*img.shape[:2], patches.PATCH)
        cut = patches.cut(img, coords)
        keep = patches.textured(cut)
        cuts.append(cut[keep])
        names += [patches.patch_name(name, y, x) for (y, x), k in zip(coords, keep) if k]
    hr = torch.from_numpy(np.concatenate(cuts)).permute(0, 3, 1, 2).contiguous()
    return hr, tuple(names)


def _mean_psnr(pred: torch.Tensor, hr: torch.Tensor) -> float:
    return metrics.psnr(pred, to_float(hr)).mean().item()


def generalisation(model: nn.Module | str | os.PathLike, hr: torch.Tensor | None = None,
                   kernels: tuple[str, ...] = LR_KERNELS) -> dict[str, KernelScore]:
    """kernel -> KernelScore for a model (or a weights file from save_weights / a trial's best.pt) on
    the outside patches (or on the given uint8 [N,3,128,128] HR patches)."""
    if not isinstance(model, nn.Module):
        model = load_model(model)
    hr = outside_patches()[0] if hr is None else hr
    scores = {}
    for kernel in kernels:
        lr = downscale_with(hr, kernel)
        scores[kernel] = KernelScore(kernel, _mean_psnr(upscale(model, lr), hr),
                                     _mean_psnr(bicubic_upscale(to_float(lr)), hr), len(hr))
    return scores


def format_table(scores: dict[str, KernelScore]) -> str:
    lines = [f"{'LR kernel':<10} {'model dB':>9} {'bicubic dB':>11} {'gain dB':>8} {'images':>7}"]
    for s in scores.values():
        lines.append(f"{s.kernel:<10} {s.model_psnr:>9.2f} {s.bicubic_psnr:>11.2f} {s.gain_db:>+8.2f} {s.images:>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", help="a weights file (save_weights) or a trial's best.pt")
    args = parser.parse_args(argv)
    scores = generalisation(args.weights)
    print(format_table(scores))
    print(json.dumps({k: {**asdict(s), "gain_db": s.gain_db} for k, s in scores.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
