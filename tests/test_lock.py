"""The lock file CI installs from (requirements/lock-linux-py311.txt) pins every dependency that
pyproject.toml declares, at a version inside the declared range, and nothing twice."""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock-linux-py311.txt"


def locked_versions() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{LOCK.name}: '{line}' is not an exact pin"
        assert canonicalize_name(name) not in pins, f"{LOCK.name}: {name} pinned twice"
        pins[canonicalize_name(name)] = version
    return pins


def test_lock_pins_every_declared_dependency_inside_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(text) for text in project["dependencies"] + project["optional-dependencies"]["test"]]
    pins = locked_versions()
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared in pyproject.toml but not locked"
        assert requirement.specifier.contains(pins[name], prereleases=True), (requirement, pins[name])


def test_ci_and_readme_install_from_the_lock():
    assert f"-r requirements/{LOCK.name}" in (ROOT / ".ci" / "run").read_text()
    assert f"pip install -r requirements/{LOCK.name}" in (ROOT / "README.md").read_text()
