"""A 5 x 7 bitmap font for burned-in annotation and lead side markers, defined in code.

Consoles burn text with their own bitmap fonts; a coded font keeps every render identical on
every machine (no font files, no rendering library). Glyphs are the classic 5 x 7 dot-matrix
shapes (upper case, digits and a few symbols). ``glyph_coverage`` rasterises a string at any
size and orientation in millimetres, by supersampling each pixel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GLYPH_COLUMNS", "GLYPH_ROWS", "glyph_coverage", "text_size_cells"]

GLYPH_COLUMNS, GLYPH_ROWS = 5, 7
ADVANCE = GLYPH_COLUMNS + 1  # one blank column between characters
LINE_PITCH = GLYPH_ROWS + 3  # three blank rows between lines

_GLYPHS_TEXT = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    " ": "..... ..... ..... ..... ..... ..... .....",
    "-": "..... ..... ..... ##### ..... ..... .....",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    "/": "..... ....# ...#. ..#.. .#... #.... .....",
}


def _parse(pattern: str) -> np.ndarray:
    rows = pattern.split()
    if len(rows) != GLYPH_ROWS or any(len(r) != GLYPH_COLUMNS for r in rows):
        raise ValueError(f"glyph pattern must be {GLYPH_ROWS} rows of {GLYPH_COLUMNS}: {pattern!r}")
    return np.array([[ch == "#" for ch in row] for row in rows], dtype=bool)


GLYPHS: dict[str, np.ndarray] = {ch: _parse(p) for ch, p in _GLYPHS_TEXT.items()}


def text_size_cells(lines: list[str]) -> tuple[int, int]:
    """(width, height) of a block of lines in glyph cells (no trailing gaps)."""
    width = max(len(line) for line in lines) * ADVANCE - 1
    height = (len(lines) - 1) * LINE_PITCH + GLYPH_ROWS
    return width, height


def _bitmap(lines: list[str]) -> np.ndarray:
    """The block as one boolean cell map (rows, cols), top-left aligned lines."""
    width, height = text_size_cells(lines)
    cells = np.zeros((height, width), dtype=bool)
    for k, line in enumerate(lines):
        for j, ch in enumerate(line.upper()):
            if ch not in GLYPHS:
                raise ValueError(f"character {ch!r} has no glyph (line {line!r})")
            r0, c0 = k * LINE_PITCH, j * ADVANCE
            cells[r0 : r0 + GLYPH_ROWS, c0 : c0 + GLYPH_COLUMNS] = GLYPHS[ch]
    return cells


def glyph_coverage(
    lines: list[str],
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    origin_mm: tuple[float, float],
    cell_mm: float,
    angle_rad: float = 0.0,
) -> np.ndarray:
    """Fraction of each point's neighbourhood covered by the text's strokes.

    ``x_mm, y_mm``: sample positions (detector mm; x right, y down), e.g. sub-pixel samples;
    ``origin_mm``: the block's top-left corner; ``cell_mm``: one dot of the 5 x 7 matrix;
    ``angle_rad``: rotation of the block about its origin (clockwise on screen). Returns 0/1 per
    sample; average over sub-pixel samples for area coverage.
    """
    cells = _bitmap(lines)
    x_mm, y_mm = np.broadcast_arrays(np.asarray(x_mm, dtype=float), np.asarray(y_mm, dtype=float))
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    dx, dy = x_mm - origin_mm[0], y_mm - origin_mm[1]
    u = (c * dx + s * dy) / cell_mm  # along the text line, in cells
    v = (-s * dx + c * dy) / cell_mm  # down the block, in cells
    col = np.floor(u).astype(np.int64)
    row = np.floor(v).astype(np.int64)
    inside = (row >= 0) & (row < cells.shape[0]) & (col >= 0) & (col < cells.shape[1])
    out = np.zeros(np.shape(x_mm), dtype=np.float32)
    out[inside] = cells[row[inside], col[inside]]
    return out
