"""`sr-search predict`: upscale a folder of images with a study's model: its final step's when it has one,
else the search's best trial (`evaluate` scores the search's best unless told `--trials final`)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from search import tracking
from sr_core.contract import BEST_WEIGHTS
from sr_core.images import IMAGE_SUFFIXES, DataError, read_rgb
from sr_core.infer import load_model, upscale
from sr_core.pixels import to_uint8


def predict_folder(tracking_uri: str, study: str, input_dir: Path, output_dir: Path,
                   self_ensemble: bool = False, device: str | None = None, log=print) -> list[Path]:
    """Every image of input_dir -> output_dir/<same stem>.png, 4x larger. Returns the written paths."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise DataError(f"{input_dir}: input folder not found")
    files = sorted(p for p in input_dir.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DataError(f"{input_dir}: no .png/.jpg images to upscale")
    # Decode every input before writing anything: a corrupt file stops the job with nothing written.
    images = [read_rgb(p) for p in files]
    client = MlflowClient(tracking_uri)
    trial = tracking.best_model(client, study)  # the final step's model when the study has one
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        weights = tracking.download(client, trial["run_id"], BEST_WEIGHTS, tmp)
        model = load_model(weights, device)
    log(f"model        : {trial['name']} (val/psnr {trial.get('best/val_psnr', float('nan')):.2f} dB)"
        f"{', self-ensemble x8' if self_ensemble else ''}")
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, img in zip(files, images):
        lr = torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0)
        sr = upscale(model, lr, self_ensemble=self_ensemble)[0]
        out = output_dir / f"{path.stem}.png"
        tmp_out = out.with_name(f".{out.name}.tmp")
        Image.fromarray(to_uint8(sr).permute(1, 2, 0).numpy()).save(tmp_out, format="PNG")
        os.replace(tmp_out, out)
        written.append(out)
    log(f"wrote        : {len(written)} images to {output_dir}")
    return written
