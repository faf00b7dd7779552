"""Named points in a study's run, raised as Python audit events (`sys.audit`), the standard library's
seam for observing a program from outside: with no audit hook installed a point costs one function
call. The product never acts on them; a hook that someone installs may (the fault tests' hook,
tests/search/_seams/sitecustomize.py, holds the driver at a named point so a kill lands exactly there).
"""
from __future__ import annotations

import sys

EVENT = "sr_search.point"
#: prepare: the data is being prepared; trial_closed: a trial's end was recorded; trial_paused: a trial
#: was marked paused at a rung; audit_epoch: an audited trial logged an epoch; report: the report is
#: being written.
POINTS = ("prepare", "trial_closed", "trial_paused", "audit_epoch", "report")


def reached(point: str) -> None:
    sys.audit(EVENT, point)
