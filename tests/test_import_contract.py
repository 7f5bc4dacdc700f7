"""The packages' dependency direction, read from the source (ast), and the rules' entry modules.

``evaluation.core`` is shared infrastructure: it imports no other ``evaluation`` subpackage and not
``methods``. ``evaluation.data`` imports only ``evaluation.core``. ``methods`` imports only
``evaluation.core`` and ``evaluation.data`` (``evaluation.config`` and ``evaluation.metrics`` import
``methods``, so anything more would make the two packages import each other).
"""
from __future__ import annotations

import ast
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


SCRIPTS = ROOT / "workflow" / "scripts"
RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
RULE_SCRIPTS = sorted({(path.name, script) for path in RULE_FILES
                       for script in re.findall(r"python \$DMGD_SCRIPTS/(\w+)\.py", path.read_text())})
RULES = sorted({name for path in RULE_FILES for name in re.findall(r"^\s*rule (\w+):", path.read_text(), re.M)})
# the command lines left in the packages: the GPU slot wrapper that prefixes GPU jobs' commands, and the
# argparse types every script shares
COMMAND_LINE_MODULES = {"evaluation/core/gpu_slots.py", "evaluation/core/cli.py"}


def test_the_rules_run_scripts():
    assert len(RULE_SCRIPTS) >= 10   # the regex still finds the rules' scripts


@pytest.mark.parametrize(("rules", "script"), RULE_SCRIPTS)
def test_every_rule_script_exists(rules, script):
    assert (SCRIPTS / f"{script}.py").is_file(), f"workflow/rules/{rules}: no workflow/scripts/{script}.py"


@pytest.mark.parametrize("rule", [name for name in RULES if name != "all"])
def test_every_rule_has_a_script_named_like_it(rule):
    assert rule in {script for _, script in RULE_SCRIPTS}, f"rule {rule} runs no workflow/scripts/{rule}.py"


def test_the_packages_have_no_command_line():
    """Arguments are parsed in workflow/scripts/; the packages are libraries."""
    found = [str(path.relative_to(ROOT)) for folder in ("methods", "evaluation") for path in (ROOT / folder).rglob("*.py")
             if path.name == "__main__.py" or re.search(r"^import argparse|__name__ == .__main__.", path.read_text(), re.M)]
    assert set(found) == COMMAND_LINE_MODULES
