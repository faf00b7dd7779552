"""The one way sr-search writes a file that someone else may read: write a sibling, then rename.

A reader (another trial, a resumed study, a user's viewer) sees the old file or the new one, never half
of one, and a crash or kill -9 mid-write leaves at most a hidden `.NAME.*.tmp` beside it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; it replaces `path` only if the block succeeds.

        with atomic_path(out) as tmp:
            torch.save(obj, tmp)

    The parent folder must exist. On any exception (KeyboardInterrupt included) the temporary file
    is removed and `path` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
