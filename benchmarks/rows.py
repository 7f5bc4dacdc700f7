"""One row of the benchmark table (``benchmarks/run.py``), shared by every module that adds figures to it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    figure: str
    suite: str
    reference: str
    ratio: str
    goal: str
    met: bool | None = None   # None: no goal

    def cells(self) -> list[str]:
        verdict = "" if self.met is None else ("met" if self.met else "**not met**")
        return [self.figure, self.suite, self.reference, self.ratio, self.goal, verdict]


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"
