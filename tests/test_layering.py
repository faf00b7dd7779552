"""The import direction of DESIGN.md: sr_core imports neither search nor reports; reports imports
neither sr_core nor search (the two halves meet only through what MLflow holds)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_top_levels(package: str) -> set[str]:
    names = set()
    for path in (ROOT / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package,forbidden", [("sr_core", {"search", "reports", "ray", "optuna", "mlflow"}),
                                               ("reports", {"sr_core", "search", "torch", "ray"})])
def test_import_direction(package, forbidden):
    assert not (_imported_top_levels(package) & forbidden)
