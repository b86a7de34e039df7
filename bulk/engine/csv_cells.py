"""CSV cells that a spreadsheet does not run as formulas, and that read back exactly.

A cell whose text begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or a carriage return,
which some spreadsheets skip before looking) runs as a formula when the file is opened in
a spreadsheet. Every CSV that `bulk` writes for `bulk apply` to read (select, undo, export)
writes such a cell with one apostrophe in front, as spreadsheets themselves do to mark
text, and so is a cell that already begins with an apostrophe. Reading a CSV drops that one
apostrophe again where it stands before one of those characters, so what was written
comes back exactly: ``=SUM(A1)`` is written ``'=SUM(A1)`` and read as ``=SUM(A1)``;
``'quoted`` is written ``''quoted`` and read as ``'quoted``. A hand-written cell such as
``'quoted`` (an apostrophe before anything else) reads as it stands.
"""

from __future__ import annotations

#: What a spreadsheet takes for the start of a formula (or skips before looking).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_MARK = "'"
_MARKED = (*FORMULA_START, _MARK)


def protect(text: str) -> str:
    """The cell text to write for `text`."""
    return _MARK + text if text.startswith(_MARKED) else text


def unprotect(text: str) -> str:
    """The value a cell written by `protect` (or by hand) stands for."""
    if text.startswith(_MARK) and text[1:].startswith(_MARKED):
        return text[1:]
    return text
