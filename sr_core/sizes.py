"""The problem's geometry, stated once: 4x super-resolution of 32x32 RGB inputs to 128x128."""
from __future__ import annotations

SCALE = 4
LR_SIZE = 32
HR_SIZE = LR_SIZE * SCALE
