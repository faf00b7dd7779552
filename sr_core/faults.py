"""A test-only hook of the trainer: inject one fault into one trial, through the real handling paths.

A study switches it on per trial (the `[faults]` table of a study file, keyed by run name); real
studies never set it. Spec: `KIND[:WHERE]@EPOCH`, or `oom:to_device`.

    raise@2          a RuntimeError at the first step of epoch 2 (the trial crashes: status failed)
    nan@2            the loss of epoch 2 becomes NaN (the real divergence check ends it: diverged)
    oom@1            torch.OutOfMemoryError at the first step of epoch 1 (status oom)
    oom:eval@1       the same, while evaluating epoch 1
    oom:to_device    the same, while moving the model and data to the device

The injected errors are the real exception types, so the code under test cannot tell them apart from
the real thing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

KINDS = ("raise", "nan", "oom")
PLACES = ("train", "eval", "to_device")
_SPEC = re.compile(r"(?P<kind>[a-z]+)(?::(?P<where>[a-z_]+))?(?:@(?P<epoch>\d+))?")


@dataclass(frozen=True)
class Fault:
    kind: str
    where: str
    epoch: int
    spec: str


def parse_fault(spec: str) -> Fault | None:
    """None for an empty spec; ValueError naming `fault` for a malformed one."""
    if not spec:
        return None
    m = _SPEC.fullmatch(spec)
    where = (m and m["where"]) or "train"
    bad = (not m or m["kind"] not in KINDS or where not in PLACES
           or (where == "to_device") != (m["epoch"] is None) or (m["kind"] == "nan" and where != "train"))
    if bad:
        raise ValueError(f"fault must be KIND[:WHERE]@EPOCH with KIND in {KINDS} and WHERE in {PLACES} "
                         f"(nan only in train; to_device takes no epoch), got {spec!r}")
    return Fault(m["kind"], where, int(m["epoch"] or 0), spec)


def inject(fault: Fault | None, where: str, epoch: int) -> bool:
    """Raise the fault if it is due here; True when a NaN is due (the caller poisons its loss)."""
    if fault is None or fault.where != where or (where != "to_device" and fault.epoch != epoch):
        return False
    if fault.kind == "raise":
        raise RuntimeError(f"injected fault {fault.spec!r}")
    if fault.kind == "oom":
        raise torch.OutOfMemoryError(f"injected fault {fault.spec!r}: simulated out of memory")
    return True
