"""Running the workflow from tests: ``snakemake`` on the repository's Snakefile in a work directory,
and the rules' scripts (``workflow/scripts/<rule>.py``) on their own."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
TEST_PROFILE = ROOT / "config" / "test.yaml"
SCRIPTS = ROOT / "workflow" / "scripts"


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]


def snakemake_env(workdir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(workdir / ".cache"), **extra}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True,
                          env=snakemake_env(workdir), check=False)


def script_command(script: str, *args: str) -> list[str]:
    """The command line of ``workflow/scripts/<script>.py``, as its rule runs it."""
    return [sys.executable, str(SCRIPTS / f"{script}.py"), *args]


def load_script(script: str) -> ModuleType:
    """``workflow/scripts/<script>.py`` as a module, for tests that call its ``main(argv)``."""
    spec = importlib.util.spec_from_file_location(f"workflow_scripts_{script}", SCRIPTS / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
