"""The packages' dependency direction, read from the source (ast), and the rules' entry modules.

``evaluation.core`` is shared infrastructure: it imports no other ``evaluation`` subpackage and not
``methods``. ``evaluation.data`` imports only ``evaluation.core``. ``methods`` imports only
``evaluation.core`` and ``evaluation.data`` (``evaluation.config`` and ``evaluation.metrics`` import
``methods``, so anything more would make the two packages import each other).
"""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# importing package -> the evaluation subpackages it may import (its own is always allowed)
ALLOWED = {
    "methods": {"evaluation.core", "evaluation.data"},
    "evaluation.core": set(),
    "evaluation.data": {"evaluation.core"},
}
FORBIDS_METHODS = ("evaluation.core", "evaluation.data")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``path``, relative ones resolved; a
    ``from package import name`` also yields ``package.name`` (it may be a submodule)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def owner(module: str) -> str | None:
    """The contract key that governs ``module``: ``methods`` or ``evaluation.<subpackage>``."""
    parts = module.split(".")
    if parts[0] == "methods":
        return "methods"
    if parts[0] == "evaluation" and len(parts) > 1:
        return ".".join(parts[:2])
    return None


def is_evaluation_subpackage(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "evaluation" and len(parts) > 1 and (ROOT / "evaluation" / parts[1]).is_dir()


def violations() -> list[str]:
    found = []
    for path in sorted([*ROOT.glob("methods/**/*.py"), *ROOT.glob("evaluation/**/*.py")]):
        importer = owner(module_name(path))
        if importer not in ALLOWED:
            continue
        for line, module in imported_modules(path):
            target = owner(module)
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if target == "methods" and importer in FORBIDS_METHODS:
                found.append(f"{where} ({importer} must not import methods)")
            elif is_evaluation_subpackage(module) and target != importer and target not in ALLOWED[importer]:
                allowed = ", ".join(sorted(ALLOWED[importer]))
                rule = f"may import only {allowed}" if allowed else "imports no other evaluation subpackage"
                found.append(f"{where} ({importer} {rule})")
    return found


def test_no_module_imports_against_the_contract():
    assert violations() == []


def test_the_contract_check_names_the_file_and_import(tmp_path, monkeypatch):
    """A seeded violation in a copy of the tree is reported with its file, line and import."""
    for folder in ("methods", "evaluation"):
        (tmp_path / folder).mkdir()
    (tmp_path / "evaluation" / "core").mkdir()
    (tmp_path / "evaluation" / "metrics").mkdir()
    (tmp_path / "evaluation" / "core" / "bad.py").write_text("from ..metrics import measure\nimport methods.registry\n")
    (tmp_path / "methods" / "bad.py").write_text("\n\nfrom evaluation.metrics.measure import compute\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = violations()
    assert ("evaluation/core/bad.py:1 imports evaluation.metrics (evaluation.core imports no other evaluation "
            "subpackage)") in found
    assert "evaluation/core/bad.py:2 imports methods.registry (evaluation.core must not import methods)" in found
    assert ("methods/bad.py:3 imports evaluation.metrics.measure (methods may import only evaluation.core, "
            "evaluation.data)") in found


RULE_MODULES = sorted({(path.name, module) for path in (ROOT / "workflow" / "rules").glob("*.smk")
                       for module in re.findall(r"python -m ([\w.]+)", path.read_text())})


def test_the_rules_run_python_modules():
    assert len(RULE_MODULES) >= 10   # the regex still finds the rules' entry modules


@pytest.mark.parametrize(("rules", "module"), RULE_MODULES)
def test_every_rule_entry_module_exists(rules, module):
    assert importlib.util.find_spec(module) is not None, f"workflow/rules/{rules}: python -m {module} finds no module"
