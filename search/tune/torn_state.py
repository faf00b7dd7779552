"""Repair a Tune experiment state that a kill -9 of the driver tore in half.

Tune writes each snapshot of an experiment (experiment_state-*.json, the searcher's and the
scheduler's state) atomically into the driver's staging folder, inside the Ray session's folder
(`<session>/artifacts/<time>/<experiment>/driver_artifacts/`), then a background thread copies those
files to the experiment's storage folder, which is what `Tuner.restore` reads. A kill -9 in the middle
of that copy leaves a truncated file there ("Failed to restore the run state", a JSONDecodeError), and
the study could not be resumed. The staging copy is still whole: the killed driver's session folder
outlives it. Before a resume, every file of the storage folder that does not load is replaced
(atomically) by its whole staging copy. Local (or shared-folder) storage only: a remote URI is left
to Tune.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path


def loads(path: Path) -> bool:
    """Whether a state file loads: JSON (or a pickle) for .json, pickle for .pkl; other files are not judged."""
    if path.suffix not in (".json", ".pkl"):
        return True
    # Tune's search_gen_state-*.json is a cloudpickle despite its name: a .json file loads as either.
    readers = [lambda b: json.loads(b.decode()), pickle.loads] if path.suffix == ".json" else [pickle.loads]
    content = path.read_bytes()
    for read in readers:
        try:
            read(content)
            return True
        except Exception:  # a torn file fails in many ways (JSONDecodeError, EOFError, UnpicklingError)
            continue
    return False


def staging_copies(session_dir: str | Path, experiment: str) -> list[Path]:
    """The killed driver's staging folders of `experiment`, newest first."""
    root = Path(session_dir) / "artifacts"
    found = [p for p in root.glob(f"*/{experiment}/driver_artifacts") if p.is_dir()]
    return sorted(found, key=lambda p: p.parent.parent.name, reverse=True)


def repair(experiment_dir: str | Path, session_dir: str | Path | None) -> list[str]:
    """Replace each torn state file of `experiment_dir` by its whole copy in the last driver's staging
    folder; returns the names repaired. A file with no whole copy is left as it is (Tune reports it)."""
    folder = Path(experiment_dir)
    if not session_dir or "://" in str(experiment_dir) or not folder.is_dir():
        return []
    repaired = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or loads(path):
            continue
        for staging in staging_copies(session_dir, folder.name):
            whole = staging / path.name
            if whole.is_file() and loads(whole):
                tmp = path.with_name(f".{path.name}.repair")
                shutil.copyfile(whole, tmp)
                os.replace(tmp, path)
                repaired.append(path.name)
                break
    return repaired
