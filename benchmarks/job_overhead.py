"""The fixed cost of a job: what each rule's process pays before it computes anything.

Every Snakemake job is a fresh Python process running ``workflow/scripts/<rule>.py``; before its first
useful operation it imports its libraries. For each rule script this times, in fresh processes,
interleaved and best of ``--repeats``: the import of the script's module (everything its job imports
before ``main`` runs), against ``python -c pass`` (the interpreter) and ``import torch`` (the floor of
any job). With ``--benchmarks results/<profile>/benchmarks`` (a profile's Snakemake ``benchmark:``
files) it adds each rule's job count, mean job wall time and the share the import takes of it, and
the profile's total import seconds (jobs x import): where process starts dominate.

Usage: python benchmarks/job_overhead.py [--benchmarks results/digits/benchmarks] [--repeats 3]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "workflow" / "scripts"


def import_probe(module: str | None) -> list[str]:
    """The command that imports ``module`` from the rule scripts' folder (None: only the interpreter)."""
    code = "pass" if module is None else f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); import {module}"
    return [sys.executable, "-c", code]


def import_seconds(commands: dict[str, list[str]], repeats: int) -> dict[str, float]:
    """Best wall seconds of each command over ``repeats`` interleaved rounds."""
    best = {name: float("inf") for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def job_seconds(folder: Path) -> pd.DataFrame:
    """Jobs and mean wall seconds per rule from a profile's benchmark folder (``<rule>/...tsv`` or
    ``<rule>.tsv``)."""
    rows = []
    for path in folder.rglob("*.tsv"):
        rule = path.relative_to(folder).parts[0].removesuffix(".tsv")
        rows.append({"rule": rule, "s": float(pd.read_csv(path, sep="\t")["s"].mean())})
    frame = pd.DataFrame(rows, columns=["rule", "s"])
    return frame.groupby("rule")["s"].agg(jobs="count", mean_s="mean").reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", type=Path, default=None, help="a profile's benchmark folder")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rules = sorted(p.stem for p in SCRIPTS.glob("*.py"))
    commands = {"(python)": import_probe(None), "(torch)": [sys.executable, "-c", "import torch"]}
    commands.update({rule: import_probe(rule) for rule in rules})
    seconds = import_seconds(commands, args.repeats)
    jobs = job_seconds(args.benchmarks).set_index("rule") if args.benchmarks else None
    print(f"Interpreter start {seconds['(python)']:.2f} s, `import torch` {seconds['(torch)']:.2f} s "
          f"(best of {args.repeats}, fresh processes)\n")
    print("| Rule | Import (s) | Above torch (s) | Jobs | Mean job (s) | Import share | Jobs x import (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    total = 0.0
    for rule in rules:
        cells = [f"`{rule}`", f"{seconds[rule]:.2f}", f"{seconds[rule] - seconds['(torch)']:+.2f}"]
        if jobs is not None and rule in jobs.index:
            count, mean = int(jobs.loc[rule, "jobs"]), float(jobs.loc[rule, "mean_s"])
            total += count * seconds[rule]
            cells += [str(count), f"{mean:.1f}", f"{100 * seconds[rule] / mean:.0f}%", f"{count * seconds[rule]:.0f}"]
        else:
            cells += ["", "", "", ""]
        print("| " + " | ".join(cells) + " |")
    if jobs is not None:
        print(f"\nImports of the profile's {int(jobs['jobs'].sum())} jobs: {total:.0f} s of "
              f"{float((jobs['jobs'] * jobs['mean_s']).sum()):.0f} job-seconds.")


if __name__ == "__main__":
    main()
