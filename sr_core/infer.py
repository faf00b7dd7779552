"""Upscaling with a trained model: batching, optional x8 self-ensemble, loading saved weights."""
from __future__ import annotations

import os

import torch
from torch import nn

from sr_core.files import atomic_path
from sr_core.models import build_model
from sr_core.dihedral import dihedral, undo_dihedral


@torch.no_grad()
def upscale(model: nn.Module, lr_batch: torch.Tensor, self_ensemble: bool = False,
            batch_size: int = 64) -> torch.Tensor:
    """LR images [N,3,h,w] (uint8, or float in [0,1]) -> float [N,3,4h,4w] in [0,1], on CPU.

    Runs on the model's device. Self-ensemble averages the model's output over the 8 rot90/flip
    variants of each input (each mapped back first), a free ~0.1-0.3 dB at 8x the compute.
    """
    if lr_batch.dim() != 4 or lr_batch.shape[1] != 3:
        raise ValueError(f"expected LR images [N,3,h,w], got {tuple(lr_batch.shape)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ops = range(8) if self_ensemble else [0]
    outputs = []
    for start in range(0, lr_batch.shape[0], batch_size):
        x = lr_batch[start:start + batch_size].to(device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        acc = torch.zeros(x.shape[0], 3, x.shape[2] * 4, x.shape[3] * 4, device=device)
        for op in ops:
            acc += undo_dihedral(model(dihedral(x, op)).float(), op)
        outputs.append((acc / len(ops)).clamp(0, 1).cpu())
    model.train(was_training)
    return torch.cat(outputs)


def save_weights(path: str | os.PathLike, arch: str, blocks: int, channels: int,
                 state_dict: dict[str, torch.Tensor]) -> None:
    """A weights file that says which network it belongs to, so `load_model` needs nothing else."""
    with atomic_path(path) as tmp:
        torch.save({"config": {"arch": arch, "blocks": blocks, "channels": channels},
                    "state_dict": state_dict}, tmp)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network from a file written by `save_weights` or a trial's `best.pt`."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = saved["config"]
    model = build_model(cfg["arch"], int(cfg["blocks"]), int(cfg["channels"]))
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()
