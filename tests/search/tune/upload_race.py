"""Measure Tune's experiment-state upload racing Tune's own writes, with Ray's syncer or ours.

    python tests/search/tune/upload_race.py --syncer ray --steps 5000    # Ray's background copy
    python tests/search/tune/upload_race.py --syncer ours --steps 5000   # search.tune.state_upload

Each step does what Tune's loop does every step here: rewrite experiment_state.json in place, save
two pickles atomically (`.<uuid>-tmp-<name>`, then a rename), and upload the staging folder with the
syncer. Run it beside a CPU load (`tests/stress.py` makes one; or two `python -c "while 1: pass"`):
on 2 loaded cores Ray's syncer failed 6 uploads of 5,000, on the renamed temporary files. Prints the
failed uploads and the seconds per upload.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import pyarrow.fs
from ray.train._internal.storage import _FilesystemSyncer
from ray.tune.utils.util import _atomic_save

from search.tune.state_upload import StateUpload


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--syncer", choices=("ray", "ours"), default="ray")
    p.add_argument("--steps", type=int, default=5000)
    args = p.parse_args()
    failures = []

    class Count(logging.Handler):
        def emit(self, record):
            failures.append(record.getMessage().splitlines()[-1])

    for name in ("ray.train._internal.syncer", "search.tune.state_upload"):
        logging.getLogger(name).addHandler(Count(logging.WARNING))
        logging.getLogger(name).propagate = False  # counted, not printed (Ray's come with a traceback)
    tmp = Path(tempfile.mkdtemp())
    stage, dest = tmp / "stage", tmp / "dest"
    stage.mkdir()
    for i in range(8):  # a demo study's staging folder: a few trial folders beside the state files
        (stage / f"trial_{i}").mkdir()
    cls = _FilesystemSyncer if args.syncer == "ray" else StateUpload
    syncer = cls(pyarrow.fs.LocalFileSystem(), sync_period=300, sync_timeout=1800)
    start = time.monotonic()
    for step in range(args.steps):
        (stage / "experiment_state.json").write_text(json.dumps({"step": step, "trials": ["x" * 200] * 100}))
        _atomic_save({"step": step}, str(stage), "searcher-state.pkl", "tmp-searcher-state.pkl")
        _atomic_save({"step": step}, str(stage), "callback-state.pkl", "tmp-callback-state.pkl")
        syncer.sync_up(str(stage), str(dest))
    syncer.wait()
    seconds = time.monotonic() - start
    print(json.dumps({"syncer": args.syncer, "steps": args.steps, "failed_uploads": len(failures),
                      "ms_per_step": round(1000 * seconds / args.steps, 3), "errors": sorted(set(failures))[:3]}))


if __name__ == "__main__":
    main()
