"""Text measured in the font the report sets it in, wrapped to a width in points, and table
columns sized to their content within a page width. Pure matplotlib (its font engine), no TeX."""

from __future__ import annotations

from functools import cache, lru_cache

from matplotlib.font_manager import FontProperties, findfont, get_font
from matplotlib.ft2font import LoadFlags

FAMILY = "DejaVu Sans"


SCALE = 100.0  # points: widths are measured once at this size and scaled (unhinted, so linear)


@cache
def _font(weight: str):
    return get_font(findfont(FontProperties(family=FAMILY, weight=weight)))


@lru_cache(maxsize=100_000)
def _word_width(word: str, weight: str) -> float:
    """Advance width of `word` at SCALE points, as the PDF backend sets it (unhinted glyphs,
    kerning included)."""
    font = _font(weight)
    font.set_size(SCALE, 72)
    font.set_text(word, 0.0, flags=LoadFlags.NO_HINTING)
    return font.get_width_height()[0] / 64


def text_width(s: str, size: float, weight: str = "normal") -> float:
    """Width of one line of `s` in points: its words' widths (each measured once) and spaces."""
    words = s.split(" ")
    return (sum(_word_width(w, weight) for w in words if w)
            + (len(words) - 1) * (_word_width("a a", weight) - 2 * _word_width("a", weight))
            ) * size / SCALE


def _split_word(word: str, width: float, size: float, weight: str) -> list[str]:
    """A word wider than the line (a long path) broken into pieces that fit."""
    pieces = []
    while word:
        lo, hi = 1, len(word)  # the longest prefix that fits (at least one character)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if text_width(word[:mid], size, weight) <= width else (lo, mid - 1)
        n = lo
        pieces.append(word[:n])
        word = word[n:]
    return pieces


def wrap(s: str, width: float, size: float, weight: str = "normal") -> list[str]:
    """Greedy word wrap of `s` (newlines kept) to lines at most `width` points wide."""
    lines = []
    for para in s.split("\n"):
        line = ""
        for word in para.split():
            for piece in (_split_word(word, width, size, weight)
                          if text_width(word, size, weight) > width else [word]):
                joined = f"{line} {piece}" if line else piece
                if line and text_width(joined, size, weight) > width:
                    lines.append(line)
                    line = piece
                else:
                    line = joined
        lines.append(line)
    return lines


def column_widths(cells: list[list[str]], header: list[str], size: float, available: float,
                  pad: float, bold: set[str] = frozenset()) -> list[float]:
    """Width in points of each column, padding (`pad`, both sides together) included; the
    header and the cells whose text is in `bold` are measured in bold.

    A column gets the width of its longest line when all of them fit in `available`; otherwise
    the widest columns are narrowed to a common cap (their text wraps), never below their
    longest word, so narrow columns (ids, numbers, verdicts) keep one line per cell and the
    table spans exactly `available`."""
    def widest(col: int, unit) -> float:
        head = [text_width(w, size, "bold") for w in unit(header[col])]
        body = [text_width(w, size, "bold" if row[col] in bold else "normal")
                for row in cells for w in unit(row[col])]
        return max([*head, *body, 0.0]) + pad

    natural = [widest(i, str.splitlines) for i in range(len(header))]
    if sum(natural) <= available:
        return natural
    # A word may be long (a path): no column's floor exceeds a third of the page.
    floor = [min(widest(i, str.split), available / 3) for i in range(len(header))]
    if sum(floor) >= available:  # even the longest words do not fit: break them
        return [f * available / sum(floor) for f in floor]
    lo, hi = 0.0, max(natural)
    for _ in range(50):  # bisection on the cap
        cap = (lo + hi) / 2
        if sum(max(f, min(n, cap)) for f, n in zip(floor, natural)) > available:
            hi = cap
        else:
            lo = cap
    widths = [max(f, min(n, lo)) for f, n in zip(floor, natural)]
    spare = available - sum(widths)  # bisection leaves a sliver: give it to the capped columns
    capped = [i for i, (w, n) in enumerate(zip(widths, natural)) if w < n]
    for i in capped:
        widths[i] += spare / len(capped)
    return widths
