"""A user's own 4x network, as docs/studies-and-schedules.md shows it: a file outside the package that a
study names as `user_arch_example:make_net`, with a searched parameter of its own (`groups`). The tests
copy it into a temporary folder, so the package never imports it."""
import torch.nn.functional as F
from torch import nn


class GroupedSR(nn.Module):
    """Features at 32x32 by grouped 3x3 convs, one PixelShuffle x4, added to the bicubic image."""

    def __init__(self, blocks: int, channels: int, groups: int):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=groups),
                                                  nn.LeakyReLU(0.2)) for _ in range(blocks)))
        self.tail = nn.Sequential(nn.Conv2d(channels, 3 * 16, 3, padding=1), nn.PixelShuffle(4))
        nn.init.zeros_(self.tail[0].weight)  # starts as bicubic, as the built-ins do
        nn.init.zeros_(self.tail[0].bias)

    def forward(self, x):
        up = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
        return up + self.tail(self.body(self.head(x)))


def make_net(blocks: int, channels: int, groups: int = 1) -> nn.Module:
    """sr-search calls this with blocks, channels and every other [space] parameter, by keyword."""
    return GroupedSR(blocks, channels, groups)
