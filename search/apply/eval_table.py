"""The table `sr-search evaluate` prints: per folder the bicubic baseline first, then each trial and
(with --self-ensemble) its "+" row, aligned, with the conventions stated under it."""
from __future__ import annotations

from collections.abc import Sequence

from search.apply.benchmark_folders import CROP, LR_KERNEL_WORDS
from search.apply.evaluate import EvalRow
from sr_core.contract import BICUBIC

HEADS = ("folder", "model", "images", "PSNR-Y dB", "SSIM-Y", "PSNR dB", "params", "FLOPs/img")
_LEFT = 2  # folder and model are text: left-aligned; the figures right-aligned


def table_order(rows: Sequence[EvalRow]) -> list[EvalRow]:
    """Folders in the order given; in each, bicubic first, then the trials in the order chosen, each
    trial's "+" row right after its own (a stable sort of rows made trial by trial)."""
    folders = list(dict.fromkeys(r.folder for r in rows))
    return sorted(rows, key=lambda r: (folders.index(r.folder), r.variant != BICUBIC))


def si(value: float | None) -> str:
    """A count in engineering units (12.3k, 4.56M, 7.89G); '-' when unknown (bicubic)."""
    if value is None:
        return "-"
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{unit}"
    return f"{value:.3g}"


def table_cells(row: EvalRow) -> tuple[str, ...]:
    return (row.folder, row.label, str(len(row.scores)), f"{row.mean('psnr_y'):.2f}",
            f"{row.mean('ssim_y'):.4f}", f"{row.mean('psnr'):.2f}", si(row.n_params), si(row.flops_per_image))


def format_table(rows: Sequence[EvalRow], lr_kernel: str) -> str:
    """The aligned table of `rows` (in table_order) and the lines that say how its figures were made."""
    cells = [HEADS] + [table_cells(r) for r in table_order(rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADS))]
    lines = ["  ".join(c.ljust(w) if i < _LEFT else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [
        f"PSNR-Y, SSIM-Y: Y of BT.601 YCbCr, {CROP} px cropped from each border; PSNR: RGB, no crop; each the "
        "mean over the folder's images, SR rounded to 8 bits first.",
        f"HR mod-cropped to a multiple of 4; LR by {LR_KERNEL_WORDS[lr_kernel]}; bicubic: MATLAB's imresize x4 "
        "of that LR. FLOPs: forward, per 32x32 LR input (x8 for +).",
    ]
    return "\n".join(lines)
