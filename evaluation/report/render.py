"""The one cell model and rendering layer of every report table.

A table is a grid of :class:`Cell` (mean, sample std, count, dense rank, provenance, interval)
summarised from a long DataFrame by :func:`summarise` (a ``groupby``); ranks come from
:func:`dense_ranks`; a cell's text from :func:`cell_text` (bold best, underlined second, ``†`` for
pooled provenance); the Markdown and LaTeX lines from :func:`markdown_table`, :func:`latex_tabular`
and :func:`notes` (the ``Notes:`` footer); names are escaped by :func:`pipe_escape` and
:func:`latex_escape`; the files of one table are written by :func:`write_texts`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.core.artifacts import write_text_atomic

MISSING = "–"
MIXED_MARK = "†"
LATEX_SPECIALS = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
                  "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", MIXED_MARK: r"\textdagger{}"}


@dataclass(frozen=True)
class Cell:
    """One table cell over its runs (or seeds): mean, sample std (0 for one value), count, dense rank
    (1 = best, 0 = unranked), what differs between its records (empty when they agree, see
    :func:`evaluation.report.tables.mixed_provenance`) and the interval envelope (None unless every
    record has one)."""

    mean: float
    std: float
    n: int
    rank: int = 0
    provenance: tuple[str, ...] = ()
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def best(self) -> bool:
        return self.rank == 1


def _mean(values: pd.Series) -> float:
    return float(np.mean(values.to_numpy(dtype=float)))


def _std(values: pd.Series) -> float:
    return float(np.std(values.to_numpy(dtype=float), ddof=1)) if len(values) > 1 else 0.0


def summarise(frame: pd.DataFrame, keys: list[str], value: str,
              provenance: Callable[[pd.DataFrame], tuple[str, ...]] | None = None,
              interval: bool = False) -> pd.DataFrame:
    """One row per group of ``keys`` whose ``value`` is never null (a group with a null is left out,
    never a mean over the rest): ``mean``, ``std`` (ddof=1, 0 for one value), ``n``, ``provenance``
    (of the group's rows, when given) and, with ``interval``, ``ci_low``/``ci_high`` (the envelope,
    None unless every row has both ends). Groups keep the order of their first row."""
    columns = keys + ["mean", "std", "n", "provenance", "ci_low", "ci_high"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    grouped = frame.groupby(keys, sort=False)
    table = grouped[value].agg(mean=_mean, std=_std, n="size", nulls=lambda v: v.isna().any())
    table["provenance"] = grouped.apply(provenance, include_groups=False) if provenance else [()] * len(table)
    if interval:
        complete = ~grouped[["ci_low", "ci_high"]].agg(lambda v: v.isna().any()).any(axis=1)
        table["ci_low"] = grouped["ci_low"].min().astype(object).where(complete, None)
        table["ci_high"] = grouped["ci_high"].max().astype(object).where(complete, None)
    else:
        table["ci_low"] = table["ci_high"] = None
    table = table[~table["nulls"].astype(bool)].reset_index()
    return table.reindex(columns=columns)


def dense_ranks(means: dict, decimals: int = 1, higher_is_better: bool = True,
                scale: float = 1.0) -> dict:
    """Dense rank (1 = best) of each key's mean, compared at the displayed precision so that ranks
    agree with what a reader sees: equal displayed means share a rank."""
    shown = {key: float(f"{mean * scale:.{decimals}f}") for key, mean in means.items()}
    order = sorted(set(shown.values()), reverse=higher_is_better)
    return {key: order.index(value) + 1 for key, value in shown.items()}


def mean_std(mean: float, std: float, decimals: int = 1, latex: bool = False) -> str:
    pm = r"$\pm$" if latex else "±"
    return f"{mean:.{decimals}f} {pm} {std:.{decimals}f}"


def cell_text(cell: Cell | None, text: Callable[[Cell], str], latex: bool = False, underline: bool = True) -> str:
    """``text(cell)`` bold when ranked first, underlined when second (if ``underline``), then ``†``
    when its records differ in provenance; the missing mark without a cell."""
    if cell is None:
        return "--" if latex else MISSING
    body = text(cell)
    if cell.rank == 1:
        body = rf"\textbf{{{body}}}" if latex else f"**{body}**"
    elif cell.rank == 2 and underline:
        body = rf"\underline{{{body}}}" if latex else f"<u>{body}</u>"
    return body + ((r"$^\dagger$" if latex else MIXED_MARK) if cell.provenance else "")


def pipe_escape(text: object) -> str:
    """Text made safe for a Markdown pipe-table cell."""
    return str(text).replace("|", "\\|")


def latex_escape(text: str) -> str:
    """Text made safe for LaTeX: specials such as ``_ % & #`` escaped."""
    return "".join(LATEX_SPECIALS.get(char, char) for char in text)


def markdown_table(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of one pipe table (cells as given: escape names with :func:`pipe_escape`)."""
    return ["| " + " | ".join(line) + " |" for line in (header, align, *rows)]


def latex_tabular(name: str, columns: int, header: Sequence[str], rows: Sequence[Sequence[str]],
                  above: Sequence[str] = ()) -> list[str]:
    """One booktabs ``tabular`` of ``columns`` right-aligned columns after the label column, a caption
    row naming it, ``above`` (lines before the header row), then a blank line."""
    return ([f"% {name}", r"\begin{tabular}{l" + "r" * columns + "}", r"\toprule",
             rf"\multicolumn{{{columns + 1}}}{{l}}{{{name}}} \\", r"\midrule", *above,
             " & ".join(header) + r" \\", r"\midrule"]
            + [" & ".join(row) + r" \\" for row in rows] + [r"\bottomrule", r"\end{tabular}", ""])


def notes(footnotes: Sequence[str], latex: bool = False) -> list[str]:
    """The ``Notes:`` footer (nothing without footnotes)."""
    if not footnotes:
        return []
    if latex:
        return ([r"\par\smallskip", r"\noindent{\footnotesize Notes:}\par"]
                + [rf"\noindent{{\footnotesize {latex_escape(note)}}}\par" for note in footnotes] + [""])
    return ["Notes:", ""] + [f"- {note}" for note in footnotes] + [""]


def pooled(where: str, provenance: Sequence[str], noun: str = "run") -> str:
    """The ``†`` footnote of a cell pooling records of different provenance."""
    return f"{MIXED_MARK} {where} pools {noun}s of different provenance: {'; '.join(provenance)}."


def count_range(counts: Iterable) -> str:
    """``5`` for one distinct count, ``3–5`` for several, ``no`` for none (every cell missing); null
    counts (of missing cells) are skipped."""
    counts = sorted({int(count) for count in counts if not pd.isna(count)})
    if not counts:
        return "no"
    return f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]}"


def csv_text(rows: Sequence, columns: Sequence[str]) -> str:
    """Long-format CSV of ``rows`` (tuples or dicts), numbers at full precision."""
    return pd.DataFrame(list(rows), columns=list(columns)).to_csv(index=False, lineterminator="\n")


def write_texts(out_dir: Path, stem: str, texts: dict[str, str]) -> list[Path]:
    """Write ``<stem><suffix>`` for each of ``texts`` into ``out_dir``, each atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, text in texts.items():
        write_text_atomic(out_dir / f"{stem}{suffix}", text)
        paths.append(out_dir / f"{stem}{suffix}")
    return paths
