"""Running the workflow from tests: ``snakemake`` on the repository's Snakefile in a work directory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_PROFILE = ROOT / "config" / "test.yaml"


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]


def snakemake_env(workdir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(workdir / ".cache"), **extra}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True,
                          env=snakemake_env(workdir), check=False)
