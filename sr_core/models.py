"""The registry of 4x super-resolution networks (32x32 -> 128x128) and their analytic cost.

`MODELS` is the one list of built-in architectures (`@register_model`, as timm and BasicSR register theirs):
`build_model`, `check_model_args`, the cost functions, the study parser and `TrialConfig` all read it.
Each network states its own 3x3 convs (`conv_shapes`), from which FLOPs and parameters are computed
without building it. A study may also name its own (an entry point or `package.module:factory`,
sr_core.archs): `build_model` and the cost functions take it, with its extra parameters as `params`.

`residual` is an EDSR/SRResNet-style net that works at the LR resolution and upsamples at the end;
`refiner` upsamples first (bicubic) and refines at 128x128, so it is 16x more expensive per conv.

Both end every residual branch in a zero-initialised conv (timm's `zero_init_last`): at init each block
is the identity, so 24 blocks x 712 channels start as a shallow net and train stably at lr 1e-4. The
original study's refiner, which lacked this, collapsed at 24 blocks.

The residual net also adds the bicubic-upsampled input to its output (as BasicSR's MSRResNet adds a
bilinear one) and zero-inits its last conv, so an untrained net already equals bicubic and training only
learns the missing detail. Measured on the embedded data (see README): it converges faster on CPU
budgets than the plain net.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from sr_core.archs import Params, as_params, build_user_net, probe_net, resolve_factory
from sr_core.errors import ConfigError
from sr_core.sizes import HR_SIZE, LR_SIZE, SCALE

#: name -> network class; classes take (blocks, channels) and have a `conv_shapes` classmethod.
MODELS: dict[str, type[nn.Module]] = {}
ConvShapes = list[tuple[int, int, int]]  # (c_in, c_out, output pixels) of every 3x3 conv


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: add a network to `MODELS` under `name`."""
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in MODELS:
            raise ValueError(f"a model named {name!r} is registered already ({MODELS[name].__name__})")
        MODELS[name] = cls
        return cls
    return add


def model_names() -> tuple[str, ...]:
    """The registered architectures, sorted."""
    return tuple(sorted(MODELS))


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)


def _bicubic_x4(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False)


class ResidualBlock(nn.Module):
    """conv3x3 -> LeakyReLU -> conv3x3, plus the identity skip."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv(channels, channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.conv2 = _conv(channels, channels)
        self.zero_init_last()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


@register_model("residual")
class ResidualSR(nn.Module):
    """Features at 32x32, B residual blocks, a global skip, two x2 PixelShuffle stages."""

    def __init__(self, blocks: int, channels: int, bicubic_skip: bool = True):
        super().__init__()
        self.bicubic_skip = bicubic_skip
        self.head = _conv(3, channels)
        self.body = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.body_tail = _conv(channels, channels)
        self.upsample = nn.Sequential(
            _conv(channels, 4 * channels), nn.PixelShuffle(2), nn.LeakyReLU(0.2, inplace=True),
            _conv(channels, 4 * channels), nn.PixelShuffle(2), nn.LeakyReLU(0.2, inplace=True),
        )
        self.tail = _conv(channels, 3)
        if bicubic_skip:
            # Start as exactly bicubic: the net only has to learn the residual detail.
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    @classmethod
    def conv_shapes(cls, blocks: int, channels: int) -> ConvShapes:
        c, lr_px, hr_px = channels, LR_SIZE * LR_SIZE, HR_SIZE * HR_SIZE
        return ([(3, c, lr_px)] + [(c, c, lr_px)] * (2 * blocks) + [(c, c, lr_px)]
                + [(c, 4 * c, lr_px), (c, 4 * c, 4 * lr_px), (c, 3, hr_px)])

    def receptive_radius(self) -> int:
        """LR pixels on each side of an output pixel's own that it depends on (what a tile must overlap
        by, see sr_core.infer): the head, 2 convs per block, body_tail and the first upsampling conv run
        at LR (2B + 3); the conv at 2x and the tail at 4x add 1 together; the bicubic skip reaches 2."""
        return 2 * len(self.body) + 4

    def widest_activation(self) -> int:
        """Floats per LR pixel of the largest tensor in a forward pass: 4C channels at 2x (the second
        upsampling conv) and C channels at 4x after it, both 16C."""
        return 16 * self.head.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.body_tail(self.body(feat))
        out = self.tail(self.upsample(feat))
        return out + _bicubic_x4(x) if self.bicubic_skip else out


@register_model("refiner")
class RefinerSR(nn.Module):
    """Bicubic x4 first, then B residual blocks at 128x128 that refine it."""

    def __init__(self, blocks: int, channels: int):
        super().__init__()
        self.head = _conv(3, channels)
        self.body = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.tail = _conv(channels, 3)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @classmethod
    def conv_shapes(cls, blocks: int, channels: int) -> ConvShapes:
        c, hr_px = channels, HR_SIZE * HR_SIZE
        return [(3, c, hr_px)] + [(c, c, hr_px)] * (2 * blocks) + [(c, 3, hr_px)]

    def receptive_radius(self) -> int:
        """LR pixels each side (as ResidualSR's): the 2B + 2 convs at 4x reach (2B + 2)/4 LR pixels,
        the bicubic 2 more plus its half-pixel sampling offset; rounded up, at most 1 more than needed."""
        return math.ceil((2 * len(self.body) + 3.5) / SCALE) + 2

    def widest_activation(self) -> int:
        """Floats per LR pixel of the largest tensor: C channels at 4x, 16C."""
        return 16 * self.head.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = _bicubic_x4(x)
        return up + self.tail(self.body(self.head(up)))


def _count(name: str, value: Any, low: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
        raise ConfigError(name, f"{name} must be an int >= {low}, got {name}={value!r}")


def check_model_args(arch: str, blocks: int, channels: int, params: Mapping[str, Any] | Params = ()) -> None:
    """The one check of a network's arguments, against the registry: raises ConfigError naming the field.
    A user's arch (sr_core.archs) is resolved here, not built: `probe_net` checks what it builds."""
    if not isinstance(arch, str) or not arch:
        raise ConfigError("arch", f"arch must be a non-empty string, got {arch!r}")
    if arch in MODELS and params:
        raise ConfigError("arch", f"arch {arch!r} takes only blocks and channels, got {sorted(dict(params))}")
    if arch not in MODELS:
        resolve_factory(arch)
    _count("blocks", blocks, 0)
    _count("channels", channels, 1)


def build_model(arch: str, blocks: int, channels: int, params: Mapping[str, Any] | Params = ()) -> nn.Module:
    """Float [N,3,32,32] in [0,1] -> [N,3,128,128] (not clamped; metrics clamp). `params`: a user's
    arch's parameters beyond blocks and channels (sr_core.archs)."""
    check_model_args(arch, blocks, channels, params)
    if arch in MODELS:
        return MODELS[arch](blocks, channels)
    return build_user_net(arch, blocks, channels, as_params(params))


def _conv_macs(c_in: int, c_out: int, pixels: int) -> int:
    return 9 * c_in * c_out * pixels


def _conv_shapes(arch: str, blocks: int, channels: int) -> ConvShapes:
    """(c_in, c_out, output pixels) of every 3x3 conv of the network, in forward order."""
    check_model_args(arch, blocks, channels)
    return MODELS[arch].conv_shapes(blocks, channels)


def flops_per_image(arch: str, blocks: int, channels: int, params: Mapping[str, Any] | Params = ()) -> int:
    """Forward FLOPs for one 32x32 image: convolutions only, one multiply-add = 2 FLOPs.

    Built-ins: from their conv shapes, without building them. Bias adds, activations, PixelShuffle
    and the bicubic resize are ignored (< 1% for any channels >= 16); torch's FlopCounterMode counts
    the same (tested). A user's arch: that counter over one forward (sr_core.archs.probe_net).
    A training step costs about 3x this (forward + backward).
    """
    if arch not in MODELS:
        check_model_args(arch, blocks, channels, params)
        return probe_net(arch, blocks, channels, as_params(params))[0]
    return 2 * sum(_conv_macs(ci, co, px) for ci, co, px in _conv_shapes(arch, blocks, channels))


def params_count(arch: str, blocks: int, channels: int, params: Mapping[str, Any] | Params = ()) -> int:
    """Trainable parameters, computed without building the model (the largest grid point has 220M;
    a user's arch is built on the meta device)."""
    if arch not in MODELS:
        check_model_args(arch, blocks, channels, params)
        return probe_net(arch, blocks, channels, as_params(params))[1]
    return sum(9 * ci * co + co for ci, co, _ in _conv_shapes(arch, blocks, channels))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
