"""What a training trial holds on its device, measured on CPU on the real network (for sr_core.memory).

`trace_trial` runs the trainer's own sequence, in its steady state (an epoch after the first improving
one): the previous step's gradients, Adam's moments and the best-weights copy are already held; a
batch is drawn, gathered, augmented and converted as `sr_core.train` does it; forward under autocast
into the MSE; zero_grad (set_to_none); backward; gradient clipping; fused Adam; then
`sr_core.evaluate.evaluate` on one eval batch; then the best-weights copy being replaced (the new one
is made while the old is held). Two accountings watch it:

- `LiveBytes`, a TorchDispatchMode, sees each op's outputs and counts a storage from the op that
  allocates it until its last reference dies (Python frees it then, as the trainer frees it on the
  GPU). That is the accounting of the CUDA caching allocator's `allocated` bytes, less its 512-byte
  rounding; its peak is what `torch.cuda.max_memory_allocated()` shows, less what kernels allocate
  inside one op (cuDNN's workspace), which sr_core.memory adds as a stated margin.
- saved_tensors_hooks record what autograd saves for backward, once per storage (a tensor saved by two
  ops, like a LeakyReLU's output that the next conv also saves, counts once), excluding the
  parameters themselves (saved in fp32 runs, but not new memory).

Dtypes: CPU autocast bf16 makes the same choices as CUDA's for these nets: of the ops they run, only
convolutions are on either device's lower-precision list, MSE is on both fp32 lists (and gets fp32
anyway); LeakyReLU, PixelShuffle and the residual adds follow their inputs; the bicubic skip works on
the fp32 input. A test checks the traced dtypes. fp16 has bf16's sizes, so it is traced as bf16.

Every size here is a polynomial in the width c, the training batch b and the eval batch e: weights,
their gradients and moments in 1, c, c^2; activations and images in b, bc (training) or e, ec
(evaluation). So sr_core.memory traces five tiny points (`POINTS`) and solves for the coefficients.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from sr_core.augment import augment_batch, epoch_draws
from sr_core.data import SRPairs
from sr_core.evaluate import evaluate
from sr_core.models import build_model
from sr_core.sizes import HR_SIZE, LR_SIZE
from sr_core.pixels import to_float

# Autocast dtype of each precision; fp16 is traced as bf16 (the same sizes; CPU autocast is bf16-first).
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.bfloat16, "fp32": None}
PHASES = ("train", "eval", "best")


def _key(t: torch.Tensor) -> int:
    return StorageWeakRef(t.untyped_storage()).cdata


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages alive, recorded after every op that allocates one, with the phase it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.phase = ""
        self.events: list[tuple[str, int]] = []

    def hold(self, tensors) -> int:
        """Count tensors allocated before the trace (parameters, gradients, ...); their total bytes."""
        before = self.bytes()
        for t in tensors:
            self._add(t)
        return self.bytes() - before

    def bytes(self) -> int:
        return sum(n for _, n in self._live.values())

    def _add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        self._live[_key(t)] = (StorageWeakRef(storage), storage.nbytes())

    def _is_new(self, t: torch.Tensor) -> bool:
        entry = self._live.get(_key(t))
        return entry is None or entry[0].expired()  # expired: the address of a freed storage, reused

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        # An output on an input's storage is a view or in-place result, not an allocation (its storage
        # may predate the trace: the data sets, the per-process caches).
        inputs = {_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        new = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and _key(t) not in inputs
               and self._is_new(t)]
        if new:
            # Between two allocations storages only die, so sweeping here loses no peak.
            self._live = {k: v for k, v in self._live.items() if not v[0].expired()}
            for t in new:
                self._add(t)
            self.events.append((self.phase, self.bytes()))
        return out


@dataclass(frozen=True)
class Trace:
    """One traced run: live bytes after each allocation (with its phase), and the held and saved totals."""
    phases: tuple[str, ...]
    live: tuple[int, ...]
    held: dict[str, int]  # params, grads, adam, best: allocated before the traced step
    saved: int  # bytes autograd saved for backward (new storages only, each once)


def trace_trial(arch: str, blocks: int, channels: int, batch_size: int, eval_batch: int,
                precision: str = "bf16", channels_last: bool = False, params=()) -> Trace:
    """Trace one steady-state training step, an evaluation and a best-weights copy (see the docstring).
    Any network build_model makes, a user's arch with its `params` too (sr_core.archs): nothing here
    knows its layers; the dispatch mode and autograd's hooks see every op of any nn.Module."""
    if precision not in AUTOCAST:
        raise ValueError(f"precision must be one of {tuple(AUTOCAST)}, got {precision=}")
    amp = AUTOCAST[precision]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(arch, blocks, channels, params)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.preserve_format)
    train_lr = torch.zeros(batch_size, 3, LR_SIZE, LR_SIZE, dtype=torch.uint8)  # stand for the data sets,
    train_hr = torch.zeros(batch_size, 3, HR_SIZE, HR_SIZE, dtype=torch.uint8)  # which are counted apart
    val = SRPairs(train_lr[:1].repeat(eval_batch, 1, 1, 1), train_hr[:1].repeat(eval_batch, 1, 1, 1),
                  tuple(str(i) for i in range(eval_batch)))
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    # One untraced step and evaluation: Adam's state exists, and the per-process caches (augmentation
    # maps, SSIM's filter) are filled, as in any epoch after the first.
    _step(model, optimizer, train_lr, train_hr, generator, amp, channels_last, saved={}, held=set())
    evaluate(model, SRPairs(val.lr[:1], val.hr[:1], val.names[:1]), torch.device("cpu"), amp)
    best = _copy(model)  # the best epoch's weights, held on the device since the first improving epoch
    live = LiveBytes()
    held = {"params": live.hold(model.parameters()), "grads": live.hold(p.grad for p in model.parameters()),
            "adam": live.hold(t for s in optimizer.state.values() for t in s.values()),
            "best": live.hold(best.values())}
    saved: dict[int, int] = {}
    with live:
        live.phase = "train"
        _step(model, optimizer, train_lr, train_hr, generator, amp, channels_last, saved,
              held={p.untyped_storage().data_ptr() for p in model.parameters()})
        live.phase = "eval"
        evaluate(model, val, torch.device("cpu"), amp, batch_size=eval_batch, channels_last=channels_last)
        live.phase = "best"
        best = _copy(model)  # the new copy is made while the previous one is held, as the trainer does
    del best
    return Trace(tuple(p for p, _ in live.events), tuple(n for _, n in live.events), held, sum(saved.values()))


def _copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _step(model, optimizer, train_lr, train_hr, generator, amp, channels_last: bool, saved: dict[int, int],
          held: set[int]) -> None:
    """One training step as sr_core.train runs it (its `_batches` and `_train_step`), eagerly."""
    order, ops = epoch_draws(generator, len(train_lr), len(train_lr), augment=True)
    lr_u8, hr_u8 = augment_batch(train_lr[order], train_hr[order], ops)
    lr_img, hr_img = to_float(lr_u8), to_float(hr_u8)
    if channels_last:
        lr_img = lr_img.contiguous(memory_format=torch.channels_last)

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in held:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            loss = F.mse_loss(model(lr_img).float(), hr_img)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
