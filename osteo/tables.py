"""The one way osteo writes a CSV: formula-leading cells neutralised, written atomically.

A cell that begins with ``= + - @`` (or a tab or carriage return) is run as a formula by
Excel, LibreOffice and Google Sheets when the file is opened ("CSV injection"). Text cells
that start so, and are not plain numbers, get a leading apostrophe, the spreadsheet
convention for "this is text". Numeric columns (a negative T-score) are left as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from osteo.files import atomic_open

__all__ = ["FORMULA_LEADS", "neutralise_cell", "neutralise_formulas", "write_csv"]

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralise_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_LEADS) and not _NUMBER.match(value):
        return "'" + value
    return value


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """A copy with every formula-leading text cell prefixed by an apostrophe."""
    out = table.copy()
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise_cell)
    return out


def write_csv(table: pd.DataFrame, path: str | Path, **to_csv) -> Path:
    """``table.to_csv(path, index=False)`` made safe to open in a spreadsheet, and atomic."""
    to_csv.setdefault("index", False)
    with atomic_open(path, "w") as stream:
        neutralise_formulas(table).to_csv(stream, **to_csv)
    return Path(path)
