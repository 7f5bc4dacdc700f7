"""The one cell model and rendering layer of every report table.

A table is one long DataFrame of cells: its key columns, then ``mean``, ``std`` (ddof=1, 0 for one value),
``n``, ``rank`` (1 = best, 0 = unranked), ``provenance`` (what differs between its records) and
``ci_low``/``ci_high``. :func:`summarise` (a ``groupby``) makes the cells, :func:`cell_table` lays them on the
grid of every cell (a missing cell has a null mean); ranks compare means at the displayed precision
(:func:`dense_ranks`). A cell's text comes from :func:`cell_text` (bold best, underlined second, ``†`` for pooled
provenance); :func:`pivot_blocks` lays the texts out as one grid per block and :func:`table_text` renders the
grids as Markdown pipe tables or LaTeX booktabs with the ``Notes:`` footer (:func:`notes`); names are escaped by
:func:`pipe_escape` and :func:`latex_escape`; :func:`cells_csv` is the long CSV and :func:`write_texts` writes the
files of one table.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.core.artifacts import write_text_atomic

MISSING = "–"
MIXED_MARK = "†"
LATEX_SPECIALS = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
                  "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", MIXED_MARK: r"\textdagger{}"}


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
    table = grouped[value].agg(mean=lambda v: float(np.mean(v.to_numpy(dtype=float))),
                               std=lambda v: float(np.std(v.to_numpy(dtype=float), ddof=1)) if len(v) > 1 else 0.0,
                               n="size", nulls=lambda v: v.isna().any())
    table["provenance"] = grouped.apply(provenance, include_groups=False) if provenance else [()] * len(table)
    if interval:
        complete = ~grouped[["ci_low", "ci_high"]].agg(lambda v: v.isna().any()).any(axis=1)
        table["ci_low"] = grouped["ci_low"].min().astype(object).where(complete, None)
        table["ci_high"] = grouped["ci_high"].max().astype(object).where(complete, None)
    else:
        table["ci_low"] = table["ci_high"] = None
    return table[~table["nulls"].astype(bool)].reset_index().reindex(columns=columns)


def cell_table(summary: pd.DataFrame, grid: pd.DataFrame, sort: list[str], order: dict[str, Sequence]) -> pd.DataFrame:
    """Every cell of ``grid`` (its key columns) with its row of ``summary`` (a missing cell: null mean, no
    provenance), sorted by the ``sort`` columns, those of ``order`` by their position in its sequence."""
    position = {column: {value: index for index, value in enumerate(values)} for column, values in order.items()}
    table = (grid.astype({"ipc": int}).merge(summary, how="left", on=list(grid.columns))
             .astype({"n": "Int64", "rank": "Int64"})
             .sort_values(sort, ignore_index=True, key=lambda column:
                          column.map(position[column.name]) if column.name in position else column))
    table["provenance"] = [() if pd.isna(mean) else p for mean, p in zip(table["mean"], table["provenance"])]
    return table


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


def cell_text(cell, text: Callable, latex: bool = False, underline: bool = True) -> str:
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


def cells(table: pd.DataFrame) -> list:
    """The rows of ``table`` as named tuples, None for a missing cell (null mean)."""
    return [None if pd.isna(row.mean) else row for row in table.itertuples()]


def pivot_blocks(table: pd.DataFrame, texts: Sequence[str], block: list[str], rows: list[str], columns: list[str]):
    """Per block of ``table`` (by the ``block`` columns, in order): its key, its row keys and column keys (tuples,
    in order of appearance) and the grid of ``texts`` (one per cell of ``table``)."""
    for key, part in table.assign(_text=list(texts)).groupby(block, sort=False):
        row_keys, column_keys = (list(dict.fromkeys(part[names].itertuples(index=False, name=None)))
                                 for names in (rows, columns))
        text = dict(zip(part[rows + columns].itertuples(index=False, name=None), part["_text"]))
        yield key, row_keys, column_keys, [[text[row + column] for column in column_keys] for row in row_keys]


def table_text(title: str, blocks: Iterable, footnotes: Sequence[str], latex: bool = False) -> str:
    """The title line (in LaTeX a comment), then per block ``(name parts, header, rows, lines above the header)`` a
    pipe table under a ``###`` heading or a booktabs ``tabular`` of right-aligned columns after the label column
    with a caption row naming it, then the ``Notes:`` footer."""
    lines = [f"% {latex_escape(title)}" if latex else title, ""]
    for parts, header, rows, above in blocks:
        width = len(header) - 1
        if latex:
            name = " / ".join(latex_escape(part) for part in parts)
            lines += [f"% {name}", r"\begin{tabular}{l" + "r" * width + "}", r"\toprule",
                      rf"\multicolumn{{{width + 1}}}{{l}}{{{name}}} \\", r"\midrule", *above,
                      " & ".join(header) + r" \\", r"\midrule", *(" & ".join(row) + r" \\" for row in rows),
                      r"\bottomrule", r"\end{tabular}", ""]
        else:
            lines += [f"### {' · '.join(parts)}", ""] + markdown_table(header, ["---"] + ["---:"] * width, rows) + [""]
    return "\n".join(lines + notes(footnotes, latex))


def pipe_escape(text: object) -> str:
    """Text made safe for a Markdown pipe-table cell."""
    return str(text).replace("|", "\\|")


def latex_escape(text: str) -> str:
    """Text made safe for LaTeX: specials such as ``_ % & #`` escaped."""
    return "".join(LATEX_SPECIALS.get(char, char) for char in text)


def markdown_table(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of one pipe table (cells as given: escape names with :func:`pipe_escape`)."""
    return ["| " + " | ".join(line) + " |" for line in (header, align, *rows)]


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


def cells_csv(table: pd.DataFrame, columns: Sequence[str], **derived: Callable) -> str:
    """Long format, one row per non-missing cell of ``table`` (plus the ``derived`` columns), numbers at full
    precision, ``mixed_provenance`` the cell's provenance joined by ``; ``."""
    table = table.dropna(subset=["mean"]).assign(mixed_provenance=lambda t: t["provenance"].map("; ".join), **derived)
    return table[list(columns)].to_csv(index=False, lineterminator="\n")


def write_texts(out_dir: Path, stem: str, texts: dict[str, str]) -> list[Path]:
    """Write ``<stem><suffix>`` for each of ``texts`` into ``out_dir``, each atomically."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for suffix, text in texts.items():
        write_text_atomic(Path(out_dir) / f"{stem}{suffix}", text)
    return [Path(out_dir) / f"{stem}{suffix}" for suffix in texts]
