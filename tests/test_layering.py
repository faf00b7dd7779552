"""The import graph of DESIGN.md, walked over every module of every sub-package (deferred imports
inside functions count too): sr_core imports neither search nor reports; reports imports neither
sr_core nor search (the two halves meet only through what MLflow holds); tooling depends on the
product, never the reverse (search.bench is imported by nothing but search.cli); what Ray Tune pickles
(search.tune) does not reach back into what drives it (search.run, search.apply, search.cli); and no module imports itself round a cycle."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sr_core", "search", "reports")


def _modules() -> dict[str, Path]:
    mods = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module name an import statement of this file names (resolved to the longest known
    project module, or kept as the third-party top level)."""
    out, base = set(), name.split(".")
    anchor_base = base if path.name == "__init__.py" else base[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                anchor = anchor_base[: len(anchor_base) - (node.level - 1)]
                module = ".".join(anchor + ([module] if module else []))
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for candidate in names:
            found = candidate
            while found and found not in MODULES:
                found = found.rpartition(".")[0]
            out.add(found or candidate.split(".")[0])
    return out - {name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _top(name: str) -> str:
    return name.split(".")[0]


def _within(name: str, module: str) -> bool:
    """`module` itself or one of its sub-modules (search.apply.benchmark_folders is not within search.bench)."""
    return name == module or name.startswith(module + ".")


#: The one edge from reports into sr_core: the tracking contract at the bottom of the graph.
CONTRACT = "sr_core.contract"
BOTTOM = (CONTRACT,)


@pytest.mark.parametrize("package,forbidden", [
    ("sr_core", {"search", "reports", "ray", "optuna", "mlflow"}),
    ("reports", {"sr_core", "search", "torch", "ray", "optuna"}),
])
def test_import_direction(package, forbidden):
    bad = {(m, t) for m, targets in GRAPH.items() if _top(m) == package for t in targets
           if _top(t) in forbidden and t not in BOTTOM}
    assert bad == set()


@pytest.mark.parametrize("module", [*BOTTOM, "sr_core"])
def test_the_contract_and_the_package_holding_it_import_nothing_of_the_project(module):
    # reports may import sr_core.contract only if importing it brings no other part of sr_core along
    assert {t for t in GRAPH[module] if _top(t) in PACKAGES} == set()


def test_the_benchmarks_are_imported_by_nothing_but_the_cli():
    users = {m for m, targets in GRAPH.items() if any(_within(t, "search.bench") for t in targets)}
    assert {u for u in users if not _within(u, "search.bench")} == {"search.cli"}


def test_what_tune_runs_does_not_reach_back_into_the_engine():
    engine_side = ("search.run", "search.apply", "search.cli", "search.bench")  # what drives Tune, or uses its results
    bad = {(m, t) for m, targets in GRAPH.items() if m.startswith("search.tune")
           for t in targets if any(_within(t, side) for side in engine_side)}
    assert bad == set()


def _cycles() -> list[list[str]]:
    cycles, done = [], set()

    def visit(node, stack):
        for target in sorted(GRAPH.get(node, ())):
            if target in stack:
                cycles.append(stack[stack.index(target):] + [target])
            elif target in GRAPH and target not in done:
                visit(target, stack + [target])
        done.add(node)

    for name in sorted(GRAPH):
        if name not in done:
            visit(name, [name])
    return cycles


def test_there_is_no_import_cycle():
    assert _cycles() == []


def test_the_walk_sees_the_sub_packages_and_the_checks_can_fail():
    assert {"search.tune.tuner", "search.bench.cli", "sr_core.contract", "sr_core.throughput"} <= set(GRAPH)
    assert "sr_core.throughput" in GRAPH["search.run.cluster"] and "search.bench.cli" in GRAPH["search.cli"]
    GRAPH["sr_core.models"].add("sr_core.train")  # a cycle made on purpose: train -> models -> train
    try:
        assert _cycles()
    finally:
        GRAPH["sr_core.models"].discard("sr_core.train")
