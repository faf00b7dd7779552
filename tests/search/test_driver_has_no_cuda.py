"""The driver never touches the GPU during a study: no CUDA context held by the driver (a study's
driver shares its machine with trials that want every byte of GPU memory). Device work that the
driver needs (the throughput for the cost estimate) runs in a Ray task placed like a trial.

The driver-side modules are checked for any use of `torch.cuda` or of the helper that picks it; the
Ray task in search/run/cluster.py is the one allowed place, inside a function Ray runs remotely."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every module the driver runs: the study machinery, the driver side of search/tune/ (the trainable
# runs in the trials' processes, where CUDA belongs) and the image science the driver calls from
# sr_core. search/apply/ (predict, evaluate) runs models on a GPU by design; the benchmarks are not
# the driver.
DRIVER_MODULES = sorted(str(p.relative_to(ROOT)) for p in [
    *(ROOT / "search").glob("*.py"), *(ROOT / "search" / "run").glob("*.py"), *(ROOT / "search" / "tune").glob("*.py"),
    ROOT / "sr_core" / "crops.py", ROOT / "sr_core" / "generalise.py"] if p.name != "trainable.py")
REMOTE_FUNCTIONS = {"measure"}  # decorated with @ray.remote: runs in a worker, not the driver


def _cuda_uses(tree: ast.AST, skip: set[str]) -> list[int]:
    found = []

    def visit(node, inside_remote=False):
        if isinstance(node, ast.FunctionDef) and node.name in skip:
            inside_remote = True
        if not inside_remote:
            if isinstance(node, ast.Attribute) and node.attr == "cuda":
                found.append(node.lineno)
            if isinstance(node, ast.Name) and node.id == "default_device":
                found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, inside_remote)

    visit(tree)
    return found


def test_the_driver_modules_are_found():
    assert {"search/run/engine.py", "search/tracking.py", "search/run/closing.py", "search/tune/callback.py",
            "search/tune/tuner.py", "sr_core/crops.py"} <= set(DRIVER_MODULES)


@pytest.mark.parametrize("module", DRIVER_MODULES)
def test_driver_module_does_not_touch_cuda(module):
    tree = ast.parse((ROOT / module).read_text())
    assert _cuda_uses(tree, REMOTE_FUNCTIONS) == []


def test_the_checker_catches_a_cuda_call():
    assert _cuda_uses(ast.parse("import torch\nx = torch.cuda.device_count()"), set()) == [2]
    assert _cuda_uses(ast.parse("def measure():\n    torch.cuda.synchronize()"), REMOTE_FUNCTIONS) == []
