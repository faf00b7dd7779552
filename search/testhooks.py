"""Test-only hook of the driver and the trial: stop at a named point so the fault suite can kill the
process exactly there (kill -9 during data preparation, between trials, while the report is written).

Off unless the environment names a point: `SR_SEARCH_PAUSE_AT=report` makes the process print
`[test hook] paused at report` and wait there until it is killed. Real runs never set it.
"""
from __future__ import annotations

import os
import sys
import time

ENV = "SR_SEARCH_PAUSE_AT"
POINTS = ("prepare", "trial_closed", "trial_paused", "audit_epoch", "report")


def pause_point(name: str) -> None:
    if os.environ.get(ENV) != name:
        return
    print(f"[test hook] paused at {name}", file=sys.stderr, flush=True)
    while True:  # until killed
        time.sleep(3600)
