"""Architectures beyond the built-ins: how an `arch` name becomes a network factory, and what a user's
network is checked and measured by.

An `arch` is, in this order:
  - a built-in of `sr_core.models.MODELS` (`refiner`, `residual`);
  - the name of an entry point in the group `sr_search.archs` of an installed distribution
    (`[project.entry-points."sr_search.archs"] mynet = "mypkg.nets:make_net"`);
  - `package.module:factory`, importable from the working directory or PYTHONPATH.

A factory is called with keywords: `blocks`, `channels` and every other parameter of the study's
[space] (`groups = [1, 2]` reaches it as `groups=1` or `groups=2`), and returns an `nn.Module` taking
float [N,3,32,32] to [N,3,128,128]. `probe_net` builds it on the meta device (no memory, no compute; on
CPU if the factory needs real tensors) and runs one forward under torch's own FLOP counter
(`torch.utils.flop_counter.FlopCounterMode`): the output's shape is checked and the forward's FLOPs and
the parameters are counted. Whatever is wrong is a ConfigError of the field `arch` naming the arch.
"""
from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sr_core.errors import ConfigError
from sr_core.sizes import HR_SIZE, LR_SIZE

ENTRY_POINT_GROUP = "sr_search.archs"
Params = tuple[tuple[str, Any], ...]  # a net's parameters beyond blocks and channels, sorted by name


def as_params(params: Mapping[str, Any] | Params | None) -> Params:
    """The hashable, sorted form of a net's extra parameters (a mapping or pairs)."""
    items = params.items() if isinstance(params, Mapping) else (params or ())
    return tuple(sorted((str(k), v) for k, v in items))


def installed_archs() -> tuple[str, ...]:
    """The names installed distributions register in the entry-point group `sr_search.archs`."""
    return tuple(sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}))


def _fail(arch: str, what: str) -> ConfigError:
    return ConfigError("arch", f"arch {arch!r}: {what}")


def _import(module: str):
    """The module, also from the working directory (a console script's sys.path lacks it)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    return importlib.import_module(module)


def resolve_factory(arch: str) -> Callable[..., Any]:
    """The factory an entry point or a `package.module:factory` path names (not a built-in)."""
    if ":" in arch:
        module, _, attr = arch.partition(":")
        try:
            obj = _import(module)
        except Exception as exc:  # noqa: BLE001 - whatever the user's module raises on import
            raise _fail(arch, f"cannot import module {module!r} ({type(exc).__name__}: {exc}); it must be "
                              "importable from the working directory or PYTHONPATH") from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise _fail(arch, f"module {module!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
    else:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=arch)
        if not found:
            raise _fail(arch, "unknown: not a built-in (refiner, residual), not an installed "
                              f"{ENTRY_POINT_GROUP} entry point {list(installed_archs())}, and not a "
                              "package.module:factory path")
        try:
            obj = next(iter(found)).load()
        except Exception as exc:  # noqa: BLE001
            raise _fail(arch, f"its entry point {next(iter(found)).value!r} cannot be loaded "
                              f"({type(exc).__name__}: {exc})") from None
    if not callable(obj):
        raise _fail(arch, f"{type(obj).__name__} {obj!r} is not callable: name a function or class")
    return obj


def build_user_net(arch: str, blocks: int, channels: int, params: Params = ()) -> nn.Module:
    """The factory's network: factory(blocks=, channels=, **params), checked to be an nn.Module."""
    factory = resolve_factory(arch)
    try:
        net = factory(blocks=blocks, channels=channels, **dict(params))
    except Exception as exc:  # noqa: BLE001 - the user's factory
        raise _fail(arch, f"its factory raised {type(exc).__name__}: {exc} "
                          f"(called with blocks={blocks}, channels={channels}"
                          + "".join(f", {k}={v!r}" for k, v in params) + ")") from None
    if not isinstance(net, nn.Module):
        raise _fail(arch, f"its factory returned a {type(net).__name__}, not a torch.nn.Module")
    return net


def _forward(arch: str, blocks: int, channels: int, params: Params, device: str) -> tuple[int, int]:
    with torch.device(device):
        net = build_user_net(arch, blocks, channels, params)
    x = torch.zeros(1, 3, LR_SIZE, LR_SIZE, device=device)
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            y = net(x)
    except Exception as exc:  # noqa: BLE001 - the user's forward
        raise _fail(arch, f"its forward of a [1, 3, {LR_SIZE}, {LR_SIZE}] input raised "
                          f"{type(exc).__name__}: {exc}") from None
    want = (1, 3, HR_SIZE, HR_SIZE)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != want:
        got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise _fail(arch, f"a [1, 3, {LR_SIZE}, {LR_SIZE}] input gave {got}; expected {list(want)} "
                          f"(4x the input's size, 3 channels)")
    return int(counter.get_total_flops()), sum(p.numel() for p in net.parameters() if p.requires_grad)


@functools.lru_cache(maxsize=256)
def probe_net(arch: str, blocks: int, channels: int, params: Params = ()) -> tuple[int, int]:
    """(forward FLOPs of one 32x32 image, trainable parameters) of a user's net, its output checked."""
    try:
        return _forward(arch, blocks, channels, params, "meta")
    except ConfigError:  # a factory or forward that needs real tensors: the CPU's answer is the one
        return _forward(arch, blocks, channels, params, "cpu")
