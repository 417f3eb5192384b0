"""Module structure: no import cycles in mard_core, lower layers never import higher ones, light config
modules."""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOWER = (
    "mard_core.prompts",
    "mard_core.taxonomy",
    "mard_core.retrieval",
    "mard_core.metrics",
    "mard_core.chains",
    "mard_core.negatives",
    "mard_core.verifier",
)
HIGHER = ("mard_core.evaluation", "mard_core.training", "mard_core.prm", "mard_core.baselines")
HEAVY = ("torch", "transformers", "trl", "peft", "great_expectations", "mlflow", "prefect")


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def _modules() -> dict[str, tuple[Path, bool]]:
    """mard_core's modules: dotted name -> (file, is a package)."""
    out = {}
    for path in (ROOT / "mard_core").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


def _imported(node: ast.Import | ast.ImportFrom, module: str, package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".")[: len(module.split(".")) - node.level + package]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """Module -> the mard_core modules it imports, at module level or in functions (TYPE_CHECKING blocks
    aside), with the packages each import initialises; a module's own packages are left out."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, (path, package) in modules.items():
        edges = graph.setdefault(module, set())
        tree = ast.parse(path.read_text())
        skipped = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for n in ast.walk(block)
        }
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in skipped:
                continue
            for name in _imported(node, module, package):
                parts = name.split(".")
                for i in range(len(parts), 0, -1):
                    target = ".".join(parts[:i])
                    if target in modules and target != module and not module.startswith(target + "."):
                        edges.add(target)
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_mard_core_has_no_import_cycles() -> None:
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_lower_layers_never_import_higher_ones() -> None:
    graph = import_graph()
    lower = [m for m in graph if _within(m, LOWER)]
    assert len(lower) > len(LOWER)  # the metrics submodules too
    bad = {m: sorted(r for r in _reachable(graph, m) if _within(r, HIGHER)) for m in lower}
    assert not {m: r for m, r in bad.items() if r}


@pytest.mark.parametrize("module", ["mard_core.evaluation.config", "mard_core.training.config"])
def test_config_modules_import_no_heavy_dependencies(module: str) -> None:
    code = f"import json, sys; import {module}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []


KNOWLEDGE = ("mard_core.teachers.knowledge", "mard_core.teachers.pharmacology", "mard_core.baselines")
SYNTH = "mard_core.synth"


def test_the_knowledge_rules_and_the_generator_never_import_each_other() -> None:
    """The knowledge teacher, its rule table and the baselines are pharmacology, not the synthetic generator's
    rules: neither side reaches the other through imports (any depth), in files or in a fresh interpreter."""
    graph = import_graph()
    synth = [m for m in graph if _within(m, (SYNTH,))]
    assert synth and all(m in graph for m in KNOWLEDGE)
    assert not {
        m: sorted(r) for m in KNOWLEDGE if (r := {x for x in _reachable(graph, m) if _within(x, (SYNTH,))})
    }
    assert not {m: sorted(r) for m in synth if (r := _reachable(graph, m) & set(KNOWLEDGE))}
    code = f"import json, sys; import {', '.join(KNOWLEDGE)}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert not [m for m in json.loads(out.stdout) if _within(m, (SYNTH,))]


def test_the_knowledge_rules_read_no_generator_file() -> None:
    """No source or data file of the knowledge side names the generator's package or its tables."""
    teachers = ROOT / "mard_core" / "teachers"
    files = [
        teachers / "knowledge.py",
        teachers / "pharmacology.py",
        teachers / "pharmacology.yaml",
        ROOT / "mard_core" / "baselines.py",
    ]
    tables = {p.name for p in (ROOT / "mard_core" / "synth" / "data").glob("*.yaml")}
    assert tables  # the generator's tables exist, so the check below means something
    for path in files:
        text = path.read_text()
        assert "synth" not in text, f"{path.name} names the generator"
        assert not [t for t in tables if t in text and t != path.name], f"{path.name} names a generator table"
