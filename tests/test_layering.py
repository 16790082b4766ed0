"""The architecture's import rules, read from the source (``docs/architecture.md``).

Data flows one way, so imports do too: ``kyolo`` never imports the CLI package ``training``, tests
and benchmarks never import each other (their shared oracles live in ``references``), and no
module imports itself back through a chain of others.
"""

import ast
import pathlib

import pytest

from tests.helpers import REPO

PACKAGES = ("kyolo", "training", "benchmarks", "references", "tests", "experiments")


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports() -> dict[str, set[str]]:
    """Every project module → the project modules it imports (module level or in functions)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = module_name(path)
            found = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module)
                    found |= {f"{node.module}.{alias.name}" for alias in node.names}
            graph[name] = {m for m in found if m.split(".")[0] in PACKAGES}
    modules = set(graph)
    # ``from package import module`` names a module; ``from module import function`` does not.
    return {name: {m for m in deps if m in modules} for name, deps in graph.items()}


GRAPH = project_imports()


@pytest.mark.parametrize(
    "importer, forbidden",
    [
        ("kyolo", ("training", "benchmarks", "tests", "references", "experiments")),
        ("benchmarks", ("training", "tests")),
        ("tests", ("benchmarks",)),
        ("references", ("tests", "benchmarks", "training")),
    ],
)
def test_layers_import_only_downwards(importer, forbidden):
    bad = sorted(
        f"{name} imports {dep}"
        for name, deps in GRAPH.items()
        if name.split(".")[0] == importer
        for dep in deps
        if dep.split(".")[0] in forbidden
    )
    assert not bad, bad


def test_no_import_cycles():
    """Depth-first search over the module graph (package ``__init__`` re-exports included)."""
    cycles, state = [], {}

    def visit(name, path):
        state[name] = "open"
        for dep in sorted(GRAPH.get(name, ())):
            if dep == name or dep.startswith(name + "."):
                continue  # a package importing its own submodules is how packages re-export
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles
