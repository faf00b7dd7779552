import numpy as np
import pytest
import torch
from skimage import data as skdata

from sr_core.data import SRData, SRPairs
from sr_core.resize import downscale


def _patches(image: np.ndarray, n: int, size: int = 128) -> torch.Tensor:
    """n 128x128 patches from a real photo, on a fixed lattice (deterministic)."""
    hr = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    out = []
    for r in range(0, hr.shape[1] - size + 1, 64):
        for c in range(0, hr.shape[2] - size + 1, 64):
            out.append(hr[:, r:r + size, c:c + size])
    return torch.stack(out[:n])


@pytest.fixture(scope="session")
def tiny_data() -> SRData:
    """24 train / 8 val patches of real photos: enough to see learning, fast on CPU."""
    train_hr = _patches(skdata.astronaut(), 24)
    val_hr = _patches(skdata.coffee(), 8)
    make = lambda hr, tag: SRPairs(downscale(hr), hr, tuple(f"{tag}{i}" for i in range(len(hr))))
    return SRData(train=make(train_hr, "t"), val=make(val_hr, "v"), test=None, source="test")
