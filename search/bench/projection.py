"""What a schedule replayed on the residual proxy's curves would cost the real `residual` grid on one
H100: each real config's epoch time from a throughput model anchored on the two configs measured on the
H100 (BENCHMARKS.md, "bench train on the GPU", batch 16, medians of 3 rounds, 2026-11-26):

- residual b24 c612: 211.1 images/s at 302.0 TFLOP/s: the big configs are compute-bound, so a config
  trains at most at 302 TFLOP/s (3x `flops_per_image` per training image, 1x per val image);
- residual b8 c64: 1492 images/s, 25% of the GPU busy: the small ones are launch-bound, and the launches
  grow with the depth, so a config takes at least 8/blocks x 1/1492 s per training image (a third of that
  per val image, which has no backward or optimizer step).

An epoch is then the original study's 7000 train and 1250 val images (DESIGN.md). Over the 132 configs x
75 epochs this gives ~46 GPU-hours, in line with the ~40-45 of the issue that asked for it. It is a model
with two measured points, not a measurement of each config: between them it assumes the better of the
two limits, so it is optimistic for the middle widths.
"""
from __future__ import annotations

from sr_core.models import flops_per_image

TRAIN_IMAGES, VAL_IMAGES = 7000, 1250  # the original study's data (DESIGN.md)
COMPUTE_BOUND_FLOPS = 302.0e12  # residual b24 c612 on the H100, training FLOP/s
LAUNCH_BOUND_IMAGE_S = 1 / 1492  # residual b8 c64 on the H100, seconds per training image at batch 16
LAUNCH_BOUND_BLOCKS = 8


def epoch_hours(arch: str, blocks: int, channels: int, train_images: int = TRAIN_IMAGES,
                val_images: int = VAL_IMAGES) -> float:
    """One epoch of this config on one H100 (train and val), in hours, by the model above."""
    forward = flops_per_image(arch, blocks, channels)
    floor = LAUNCH_BOUND_IMAGE_S * max(blocks, 1) / LAUNCH_BOUND_BLOCKS
    train = max(3 * forward / COMPUTE_BOUND_FLOPS, floor)
    val = max(forward / COMPUTE_BOUND_FLOPS, floor / 3)
    return (train_images * train + val_images * val) / 3600
