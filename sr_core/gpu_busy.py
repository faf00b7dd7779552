"""How busy one training trial keeps a GPU: pure rules from the config, anchored on H100 figures.

A training step costs the GPU time in proportion to its FLOPs and the host a roughly fixed time
(Python, autograd, ~400 kernel launches at 8 blocks). When the GPU's part is the smaller, the step
is launch-bound: the GPU idles while the host queues work. Two figures from BENCHMARKS.md (H100,
torch 2.11, bf16) anchor the rule:

- residual b8 c64 at batch 16 (45.7 GFLOP forward per step): GPU busy 25% of an eager step, 41%
  of a step under CUDA graphs (torch.compile mode="reduce-overhead", 2.7-3.4x the eager rate).
- the same net at batch 64 (4x the FLOPs per step) took the same wall time per step as batch 16
  (7502 against 1492 images/s): 4x the work filled the idle GPU, as a 25% share predicts.

So one trial's share of the GPU's compute is modelled as `min(1, forward FLOPs per step / F_sat)`,
with F_sat the forward FLOPs per step at which the GPU's time equals the host's: 45.7 / 0.25 =
183 GFLOP eager, 45.7 / 0.41 = 111 GFLOP under CUDA graphs. The assumptions, stated: the GPU's
time grows with FLOPs at the efficiency small convs reach (b8 c64's), and the host's time per step
does not depend on the width or the batch. Both are rough beyond the anchor; the shares only choose
between discrete options (graphs or not, 1/2/4/8 trials per GPU), which tolerates that.
"""
from __future__ import annotations

from sr_core.models import flops_per_image

# The anchor: residual b8 c64 at batch 16 (45.7 GFLOP forward per step), GPU busy 25% eager, 41% in
# CUDA graphs. Forward FLOPs per step at which one trial keeps the GPU busy:
ANCHOR_FLOPS = 16 * flops_per_image("residual", 8, 64)
SATURATING_FLOPS_EAGER = ANCHOR_FLOPS / 0.25
SATURATING_FLOPS_GRAPHS = ANCHOR_FLOPS / 0.41
# Below this share the step is launch-bound (the threshold search.bench.gpu reports with).
LAUNCH_BOUND_SHARE = 0.7
# CUDA graphs pay once a trial trains this many images: the first compile of b8 c64 took 15-17 s
# (H100, cold cache) and saved 1/1492 - 1/4004 s = 0.42 ms per image, so it breaks even after
# ~40,500 images; rounded up. The residual study's trials plan 75 x 7000 = 525,000.
CUDA_GRAPHS_MIN_IMAGES = 50_000


def forward_flops_per_step(arch: str, blocks: int, channels: int, batch_size: int, params=()) -> float:
    """Forward FLOPs of one training step (a step costs about 3x this with its backward)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size=}")
    return float(flops_per_image(arch, blocks, channels, params) * batch_size)


def compute_share(arch: str, blocks: int, channels: int, batch_size: int, cuda_graphs: bool = False,
                  params=()) -> float:
    """The fraction of a GPU's compute one trial keeps busy, in (0, 1]."""
    saturating = SATURATING_FLOPS_GRAPHS if cuda_graphs else SATURATING_FLOPS_EAGER
    return min(1.0, forward_flops_per_step(arch, blocks, channels, batch_size, params) / saturating)


def launch_bound(arch: str, blocks: int, channels: int, batch_size: int, params=()) -> bool:
    """True when an eager step leaves the GPU mostly idle (residual b8-b24 at c64, batch 16)."""
    return compute_share(arch, blocks, channels, batch_size, params=params) < LAUNCH_BOUND_SHARE


def cuda_graphs_pay(arch: str, blocks: int, channels: int, batch_size: int, planned_images: int,
                    params=()) -> bool:
    """CUDA graphs for this trial: its steps are launch-bound and it trains long enough
    (`planned_images` = epochs x images per epoch) to win back the compile."""
    return launch_bound(arch, blocks, channels, batch_size, params) and planned_images >= CUDA_GRAPHS_MIN_IMAGES
