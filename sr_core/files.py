"""The one way sr-search writes a file that someone else may read: write a sibling, then rename
(`atomic_path`, whose one home is sr_core.contract so that the report writes its file the same way),
and the sweep of what a killed writer left.

A reader (another trial, a resumed study, a user's viewer) sees the old file or the new one, never half
of one, and a crash or kill -9 mid-write leaves at most a hidden `.NAME.*.tmp` beside it.
"""
from __future__ import annotations

import os
from pathlib import Path

from sr_core.contract import atomic_path, write_text_atomic  # noqa: F401 (this module's API)


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete the `.NAME.*.tmp` files a killed writer left in `folder`; returns how many.

    Only call this while holding whatever lock keeps other writers out of `folder`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
