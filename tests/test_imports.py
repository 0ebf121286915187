"""Imports say what they mean: no cycles between our modules, no private names reached across packages, and no
importlib string registries. (The layers and "production code never imports azfinetune.testing" are
import-linter contracts in pyproject.toml, run by `make lint`.)"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "azfinetune"


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def _package_of(module: str) -> str:
    """azfinetune.targets.command -> azfinetune.targets; azfinetune.errors -> azfinetune."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else parts[0]


def test_no_import_cycles_between_our_modules() -> None:
    graph = grimp.build_graph("azfinetune", exclude_type_checking_imports=True)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported == importer or not imported.startswith("azfinetune"):
                continue
            # A package's __init__ re-exporting its own modules is not a cycle of two modules.
            if importer == imported.rsplit(".", 1)[0] or imported == importer.rsplit(".", 1)[0]:
                continue
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back and not any(
                link == step.rsplit(".", 1)[0] or step == link.rsplit(".", 1)[0]
                for link, step in itertools.pairwise(back)
            ):
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[name for name, _ in _modules()])
def test_no_private_names_across_packages(module: str, path: Path) -> None:
    """`from azfinetune.x._y import z` only inside azfinetune.x; `import importlib` only for find_spec."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = _package_of(module)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("azfinetune."):
            target = node.module
            # _version is the one private module every package may import (its __version__).
            private = [
                p for p in target.split(".")[1:] if p.startswith("_") and p not in ("__init__", "_version")
            ]
            if private and not (target.startswith(own + ".") or own == "azfinetune"):
                problems.append(f"line {node.lineno}: from {target} import ...")
            for alias in node.names:
                if alias.name.startswith("_") and alias.name != "__version__" and not target.startswith(own):
                    problems.append(f"line {node.lineno}: from {target} import {alias.name}")
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            problems.append(f"line {node.lineno}: importlib.import_module (a string registry)")
    assert not problems, f"{module}:\n" + "\n".join(problems)
