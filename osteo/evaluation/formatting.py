"""Number formats and plain-text / Markdown tables shared by reports, the CLI and logging."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["format_ci", "format_p_value", "markdown_table", "text_table"]

DASH = "-"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_number(value, digits: int = 3) -> str:
    return DASH if _missing(value) else f"{value:.{digits}f}"


def format_ci(estimate, ci: Sequence[float] | None, digits: int = 3) -> str:
    """``0.912 (0.871-0.953)``; a dash when the estimate is missing."""
    if _missing(estimate):
        return DASH
    if ci is None or any(_missing(v) for v in ci):
        return format_number(estimate, digits)
    return f"{estimate:.{digits}f} ({ci[0]:.{digits}f}-{ci[1]:.{digits}f})"


def format_p_value(p) -> str:
    """Journal style: ``<0.001`` below 0.001, otherwise three decimals."""
    if _missing(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Fixed-width table for a terminal: first column left-aligned, the rest right-aligned."""
    widths = [
        max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
        for i, h in enumerate(headers)
    ]

    def line(cells) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], left_columns: int = 1
) -> str:
    """GitHub-flavoured Markdown table: the first ``left_columns`` (labels) left-aligned, the
    rest (numbers) right-aligned; pipes in cells are escaped."""

    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    align = ["---"] * left_columns + ["---:"] * (len(headers) - left_columns)
    return "\n".join([cells(headers), "| " + " | ".join(align) + " |", *map(cells, rows)])
