"""Text for spreadsheets: the one rule every .csv and .xlsx the product writes follows.

A bureau opens these in Excel or WPS, which run a cell starting with =, +, -, @, a tab or a
carriage return as a formula (`=HYPERLINK(...)`, DDE). Text from outside (a citizen's description,
a grid's name from the layout file, a person's name) gets a leading apostrophe there (OWASP's
CSV injection advice), so it always reads as the text it was.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> Any:
    """`value` as a spreadsheet shows it and never runs: text that would start a formula gets an
    apostrophe; numbers, times and None stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
