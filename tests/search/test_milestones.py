"""The fault tests' seam: the product raises named points as audit events (search.milestones) and
does nothing with them; the tests' hook (tests/search/_seams) holds a process at the point named in
SR_SEARCH_PAUSE_AT, and only where the test put the hook on the PYTHONPATH."""
import os
import subprocess
import sys
from pathlib import Path

from _driver import ROOT, SEAMS

from search import milestones

SCRIPT = "from search import milestones; milestones.reached('prepare'); print('went on', flush=True)"


def _run(pythonpath: str, timeout: float = 20):
    env = {**os.environ, "PYTHONPATH": pythonpath, "SR_SEARCH_PAUSE_AT": "prepare"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stderr.readline() if SEAMS.name in pythonpath else ""
        out, _ = proc.communicate(timeout=2 if line else timeout)
        return line, out
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return line, None  # held until killed


def test_the_tests_hook_holds_the_process_at_the_named_point():
    line, out = _run(f"{SEAMS}{os.pathsep}{ROOT}")
    assert line.strip() == "[test hook] paused at prepare" and out is None


def test_without_the_hook_a_point_is_only_an_event_and_the_process_goes_on():
    line, out = _run(str(ROOT))
    assert line == "" and out.strip() == "went on"


def test_every_point_the_product_raises_is_a_named_one():
    import ast
    raised = set()
    for path in Path(ROOT, "search").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "reached"
                    and isinstance(node.args[0], ast.Constant)):
                raised.add(node.args[0].value)
    assert raised == set(milestones.POINTS)
