"""Replay a `sr-search run` log's search through the real search.tune.progress.Progress, on the log's
own clock: the ETA it gives at a quarter, half and three quarters of the search against the time that
really remained (BENCHMARKS.md, the estimate and the ETA).

    python tests/search/tune/eta_replay.py RUN.log --study demo

Each `epoch N NAME` line is a result, each `completed`/`pruned`/`early_stopped NAME` line closes the
trial (a pruned one at the epochs its log showed); the search ends where the log's clock starts again
(the audit's own experiment).
"""
import argparse
import re
from types import SimpleNamespace

from search.rungs import planned_epochs, schedule_epochs
from search.study import load_study
from search.tune.progress import Progress

LINE = re.compile(r"\[\s*(\d+):(\d+)\] (\w+)\s+(\d+)?\s*(\S+)")


def replay(log: str, study_name: str) -> list[tuple[float, float, float, float]]:
    events, previous = [], -1
    for line in open(log):
        match = LINE.match(line)
        if not match:
            continue
        t = int(match.group(1)) * 60 + int(match.group(2))
        if t < previous:
            break  # the audit's experiment: the search is over
        previous = t
        events.append((t, match.group(3), match.group(4), match.group(5).rstrip(":")))
    end = events[-1][0]
    study = load_study(study_name)
    steps = schedule_epochs(study)
    full = sum(k for k, e in steps if e >= study.train.epochs) / study.num_trials
    clock = SimpleNamespace(now=0.0)
    progress = Progress(study.num_trials, study.train.epochs, 0.0, clock=lambda: clock.now,
                        planned_epochs=planned_epochs(study), full_share=full)
    progress.event = lambda *args: None  # no lines: only the ETA is read
    trials, seen, out = {}, {}, []
    config = {"arch": "residual", "blocks": 1, "channels": 1, "lr": 1.0, "eta_min": 0.0}
    for t, kind, epoch, name in events:
        clock.now = t
        trial = trials.setdefault(name, SimpleNamespace(trial_id=name, status="RUNNING", config=config))
        if kind == "epoch":
            seen[name] = int(epoch)
            progress.result(list(trials.values()), trial, {"epoch": int(epoch), "val/psnr": 0.0}, False)
        elif kind in ("completed", "pruned", "early_stopped"):
            progress.closed(list(trials.values()), trial, kind, {"epochs_run": seen.get(name, 0)})
        else:
            continue
        for q in (0.25, 0.5, 0.75):
            if len(out) < 3 and q not in [o[0] for o in out] and t >= q * end:
                out.append((q, t, progress.eta_seconds(list(trials.values())), end - t))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log")
    parser.add_argument("--study", default="demo")
    args = parser.parse_args()
    for q, t, eta, remained in replay(args.log, args.study):
        print(f"at {q:.0%} of the search ({t:.0f} s): ETA {eta:.0f} s, {remained:.0f} s remained: x{eta / remained:.2f}")


if __name__ == "__main__":
    main()
