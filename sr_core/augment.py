"""Training batches drawn on the device: no host-device transfer and no sync inside the step loop.

The 8 dihedral symmetries of a square (`sr_core.dihedral`) only move pixels, so each one is a fixed
permutation of an image's H*W pixels. We build the 8 permutations once per image size (by applying
`dihedral` itself to a grid of pixel numbers, so the two can never disagree) and augmenting a batch
is then one gather per tensor, each sample reading through its own op's map. LR and HR are gathered
with the same per-sample ops, so a pair is always turned the same way.

With `rgb_permute`, each sample's op also permutes its R, G and B channels (one of the 6 orders, the
same for the LR and its HR): op = dihedral + 8 * order. Natural photos come in every hue; without it
the demo's model, trained on the few photos scikit-image ships, lost up to 1 dB against bicubic on a
saturated flower photo from outside them (docs/demo-design.md, section 7). With it off the draws are
exactly those of before (ops in 0..7).

The randomness of an epoch (the sample order and one op per sample) is drawn up front from one
generator that lives on the training device. Nothing is grouped by op on the host (the reference path
(`augment_batch_host`) needs `.unique().tolist()` and an index copy per op), and the
generator's state is a small CPU tensor the trainer checkpoints, so a resumed trial draws exactly what
an uninterrupted one would have.
"""
from __future__ import annotations

import functools

import torch

from sr_core.dihedral import NUM_OPS, dihedral


@functools.lru_cache(maxsize=16)
def dihedral_maps(size: int, device: torch.device) -> torch.Tensor:
    """int64 [8, size*size]: row `op` lists, for each output pixel, the input pixel it comes from.

    `dihedral(x, op).flatten(-2) == x.flatten(-2)[..., maps[op]]` for any square x of this size.
    Cached per (size, device): a few MB at most, built once per process.
    """
    grid = torch.arange(size * size).view(size, size)
    with torch.inference_mode(False):  # a plain tensor, usable whatever mode the first caller is in
        return torch.stack([dihedral(grid, op).reshape(-1) for op in range(NUM_OPS)]).to(device)


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """The trial's private generator, on the device that consumes its draws."""
    return torch.Generator(device=device).manual_seed(seed)


#: The 6 orders of the R, G, B channels; order 0 is the identity.
RGB_ORDERS = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


def num_ops(rgb_permute: bool) -> int:
    return NUM_OPS * (len(RGB_ORDERS) if rgb_permute else 1)


def epoch_order(generator: torch.Generator, n_train: int, per_epoch: int) -> torch.Tensor:
    """int64 [per_epoch] on the generator's device: a random permutation of the train set, cut to
    `per_epoch`; an epoch longer than the set goes on with a fresh permutation each time round."""
    rounds = -(-per_epoch // n_train)
    device = generator.device
    return torch.cat([torch.randperm(n_train, generator=generator, device=device) for _ in range(rounds)])[:per_epoch]


def epoch_draws(generator: torch.Generator, n_train: int, per_epoch: int, augment: bool,
                rgb_permute: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An epoch's sample order (int64 [per_epoch]) and one op per sample (or None), on the generator's device."""
    device = generator.device
    order = epoch_order(generator, n_train, per_epoch)
    ops = (torch.randint(0, num_ops(rgb_permute), (per_epoch,), generator=generator, device=device)
           if augment else None)
    return order, ops


def apply_ops(images: torch.Tensor, ops: torch.Tensor, rgb_permute: bool = False) -> torch.Tensor:
    """Sample k of `images` ([N,C,S,S], any dtype) turned by dihedral op `ops[k] % 8` (and, with
    `rgb_permute`, its channels put in order `ops[k] // 8` of RGB_ORDERS): gathers only, no sync."""
    n, c, h, w = images.shape
    if h != w:
        raise ValueError(f"apply_ops needs square images, got {tuple(images.shape)}")
    if ops.shape != (n,):
        raise ValueError(f"apply_ops needs one op per image, got {tuple(ops.shape)} ops for {n} images")
    if rgb_permute and c != 3:
        raise ValueError(f"rgb_permute needs 3 channels, got {c}")
    index = dihedral_maps(h, images.device)[ops % NUM_OPS]  # [N, S*S]: each sample's own permutation
    flat = images.reshape(n, c, h * w)
    out = flat.gather(2, index.unsqueeze(1).expand(n, c, h * w))
    if rgb_permute:
        channels = RGB_ORDERS.to(images.device)[ops // NUM_OPS]  # [N, 3]
        out = out.gather(1, channels.unsqueeze(2).expand(n, c, h * w))
    return out.view(n, c, h, w)


def augment_batch(lr: torch.Tensor, hr: torch.Tensor, ops: torch.Tensor,
                  rgb_permute: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The same op per sample on an LR batch and its HR batch (ops drawn by `epoch_draws`)."""
    if lr.shape[0] != hr.shape[0]:
        raise ValueError(f"augment_batch needs as many LR as HR images, got {lr.shape[0]} and {hr.shape[0]}")
    return apply_ops(lr, ops, rgb_permute), apply_ops(hr, ops, rgb_permute)


def augment_batch_host(
    lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator | None = None, rgb_permute: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference path (`FastPaths.device_rng` off): one random dihedral op per sample, drawn on
    the host, the same op on an LR and its HR, applied by grouping the samples by op. The inputs are
    untouched."""
    n = lr.shape[0]
    if hr.shape[0] != n:
        raise ValueError(f"augment_batch_host needs as many LR as HR images, got {n} and {hr.shape[0]}")
    if lr.shape[-1] != lr.shape[-2] or hr.shape[-1] != hr.shape[-2]:
        raise ValueError(f"augment_batch_host needs square images, got {tuple(lr.shape)} and {tuple(hr.shape)}")
    # Drawn on the CPU from a CPU generator: reproducible and resumable whatever the device, and
    # grouping the samples by op below then needs no GPU->CPU sync.
    ops = torch.randint(0, num_ops(rgb_permute), (n,), generator=generator)
    lr_out, hr_out = torch.empty_like(lr), torch.empty_like(hr)
    for op in ops.unique().tolist():
        idx = torch.nonzero(ops == op).squeeze(1)
        lr_idx, hr_idx = idx.to(lr.device), idx.to(hr.device)
        order = RGB_ORDERS[op // NUM_OPS].tolist()
        lr_out.index_copy_(0, lr_idx, dihedral(lr.index_select(0, lr_idx), op % NUM_OPS)[:, order])
        hr_out.index_copy_(0, hr_idx, dihedral(hr.index_select(0, hr_idx), op % NUM_OPS)[:, order])
    return lr_out, hr_out
