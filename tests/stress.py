"""Hunt a flaky test: run test files N times in a row beside a CPU-bound load, and count failures per test.

    python tests/stress.py                      # the fault, interrupt and kill/resume files, 10 rounds
    python tests/stress.py --rounds 3 --load 2 tests/search/test_trial_faults.py --json out.json

Each round is one pytest process over the named files (tests/search's fault, interrupt, kill/resume and
synchronous-halving files by default) while `--load` processes spin on the CPU, so the tests run
with less than the cores they expect: that is how CI's races show up. Outcomes are read from pytest's
JUnit XML; the output of every failed round is kept under `--keep` for reading. Prints a table (test,
failures of rounds) and, with --json, writes the same as JSON. Exit 0 whatever the tests did: it
measures, it does not judge.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["tests/search/test_trial_faults.py", "tests/search/test_interrupts.py",
           "tests/search/test_kill_and_resume.py", "tests/search/test_sync_halving.py"]


def _spin(stop) -> None:  # a CPU-bound load: one core's worth, until told to stop
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def outcomes(junit: Path) -> dict[str, str]:
    """{test id: passed | failed | error | skipped} from pytest's JUnit XML."""
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        result[test] = kinds[0] if kinds else "passed"
    return result


def one_round(files: list[str], keep: Path, n: int) -> tuple[dict[str, str], float]:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               f"--junitxml={junit}", *files], cwd=ROOT, capture_output=True, text=True)
        seconds = time.monotonic() - start
        got = outcomes(junit) if junit.exists() else {"(pytest itself)": "error"}
    if proc.returncode != 0:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"round-{n:02d}.txt").write_text(proc.stdout + proc.stderr)
    return got, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", default=DEFAULT, help="test files or node ids (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=10, help="how many times to run them (default 10)")
    p.add_argument("--load", type=int, default=os.cpu_count() or 2,
                   help="CPU-bound processes beside the tests (default: one per core)")
    p.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "sr-search-stress",
                   help="where failed rounds' output is kept (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = p.parse_args(argv)

    stop = multiprocessing.Event()
    load = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.load)]
    for proc in load:
        proc.start()
    failures, runs, seconds = Counter(), Counter(), []
    try:
        for n in range(1, args.rounds + 1):
            got, s = one_round(args.files, args.keep, n)
            seconds.append(s)
            for test, outcome in got.items():
                runs[test] += 1
                failures[test] += outcome in ("failed", "error")
            bad = sorted(t for t, o in got.items() if o in ("failed", "error"))
            print(f"round {n}/{args.rounds}: {s:.0f} s, {len(got) - len(bad)} passed, {len(bad)} failed"
                  + (f" ({', '.join(bad)}; output in {args.keep})" if bad else ""), flush=True)
    finally:
        stop.set()
        for proc in load:
            proc.join(5)
    width = max(map(len, runs), default=10)
    print(f"\n{'test':<{width}}  failed")
    for test in sorted(runs):
        print(f"{test:<{width}}  {failures[test]} of {runs[test]}")
    if args.json:
        args.json.write_text(json.dumps({
            "rounds": args.rounds, "load_processes": args.load, "files": args.files,
            "round_seconds": [round(s, 1) for s in seconds],
            "tests": {t: {"failed": failures[t], "runs": runs[t]} for t in sorted(runs)}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
