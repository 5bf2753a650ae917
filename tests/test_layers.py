"""The import contract of the layers (DESIGN.md): webhooks, worker and cli above models above
connectors. A connector speaks one outside protocol and imports nothing of odock-sync's own; the
domain imports no entry point; of the entry points, the web and the CLI may hand work to the
worker, but the worker serves no pages and runs no commands, and the web runs no commands."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEVEL = {"connectors": 0, "models": 1, "webhooks": 2, "worker": 2, "cli": 2}
ALLOWED_ACROSS_THE_TOP = {("webhooks", "worker"), ("cli", "worker"), ("cli", "webhooks")}


def imported_packages(path: Path) -> set[str]:
    """The project's top-level packages a module imports, at its top or inside a function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {name.split(".")[0] for name in names} & LEVEL.keys()


def breaks_the_layers(importer: str, imported: str) -> bool:
    if importer == imported:
        return False
    if LEVEL[imported] < LEVEL[importer]:
        return False
    return (importer, imported) not in ALLOWED_ACROSS_THE_TOP


def test_the_contract_itself_refuses_an_upward_import() -> None:
    assert breaks_the_layers("connectors", "models")
    assert breaks_the_layers("models", "webhooks")
    assert breaks_the_layers("worker", "webhooks")
    assert not breaks_the_layers("webhooks", "models")
    assert not breaks_the_layers("cli", "worker")


@pytest.mark.parametrize("package", sorted(LEVEL))
def test_no_module_imports_a_layer_above_its_own(package: str) -> None:
    breaches = sorted(
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in (ROOT / package).rglob("*.py")
        for imported in imported_packages(path)
        if breaks_the_layers(package, imported)
    )
    assert breaches == []
