"""How well an early epoch chooses each point's lr, on recorded curves (`bench search` prints it): what
a question cell (search.questions) does at its `choose_at` rung, measured."""
from __future__ import annotations

import math
from pathlib import Path

from search.bench.output import table

LR_CHOICE_EPOCHS = (1, 2, 3, 6, 12, 24, 48)


def lr_choice(path: Path, recorded: dict) -> dict | None:
    """How well each (arch, blocks, channels) point's lr is chosen at an early epoch (what a question
    cell does at its `choose_at` rung), by each config's best value so far and by its value at that
    epoch: in how many points the choice is the lr that is best at the full budget, and the mean and
    worst loss in dB (PSNR of the val MSE) of the chosen config at the full budget. None with one lr."""
    points: dict[tuple, list[dict]] = {}
    for c in recorded["configs"].values():
        points.setdefault((c["arch"], c["blocks"], c["channels"]), []).append(c)
    if all(len(cs) < 2 for cs in points.values()):
        return None
    epochs = [e for e in LR_CHOICE_EPOCHS if e < recorded["epochs"]]
    rows = []
    for e in epochs:
        for how, value in (("best so far", lambda c: min(c["val_mse"][:e])),
                           ("value at the epoch", lambda c: c["val_mse"][min(e, len(c["val_mse"])) - 1])):
            right, losses = 0, []
            for cs in points.values():
                chosen, best = min(cs, key=value), min(cs, key=lambda c: min(c["val_mse"]))
                right += chosen is best
                losses.append(10 * math.log10(min(chosen["val_mse"]) / min(best["val_mse"])))
            rows.append({"epoch": e, "by": how, "right": right, "points": len(points),
                         "mean_loss_db": sum(losses) / len(losses), "max_loss_db": max(losses)})
    return {"curves": Path(path).name, "study": recorded["study"], "seed": recorded["seed"], "rows": rows}


def format_lr_choice(choices: list[dict]) -> str:
    text = ("each point's lr chosen at an early epoch (a question cell's choose_at) against the lr best at the "
            "full budget: points chosen right, and the chosen config's loss at the full budget (dB)")
    for c in choices:
        text += f"\n\n{c['curves']} (seed {c['seed']})\n\n" + table(c["rows"], [
            ("epoch", "epoch", "d"), ("by", "chosen by", ""), ("right", "right", "d"), ("points", "of", "d"),
            ("mean_loss_db", "mean loss dB", ".3f"), ("max_loss_db", "max loss dB", ".3f")])
    return text
