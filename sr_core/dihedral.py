"""The 8 symmetries of the square (4 rotations, each optionally after a horizontal flip): joint
augmentation of an LR/HR pair, and the x8 self-ensemble at inference."""
from __future__ import annotations

import torch

NUM_OPS = 8


def dihedral(x: torch.Tensor, op: int) -> torch.Tensor:
    """One of the 8 symmetries of the square: op 0..3 rotate by 90*op degrees, op 4..7 flip first."""
    if op >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, op % 4, dims=(-2, -1))


def undo_dihedral(x: torch.Tensor, op: int) -> torch.Tensor:
    """The inverse of `dihedral(x, op)`."""
    x = torch.rot90(x, -(op % 4), dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if op >= 4 else x
