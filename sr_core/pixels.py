"""uint8 pixels <-> float pixels in [0,1]: the one conversion each way."""
from __future__ import annotations

import torch


def to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 0..1."""
    if x_uint8.dtype != torch.uint8:
        raise ValueError(f"to_float expects uint8, got {x_uint8.dtype}")
    return x_uint8.to(torch.float32) / 255.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [0,1] (clamped first) -> uint8 0..255, rounded to nearest."""
    if not x.is_floating_point():
        raise ValueError(f"to_uint8 expects a float tensor in [0,1], got {x.dtype}")
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
