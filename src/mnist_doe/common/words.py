"""Counts in words for the messages a user reads: "1 epoch", "2 epochs", never "1 epochs"
or "epoch(s)"."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None, *, grouped: bool = False) -> str:
    """`count` and the noun that goes with it: `word` for exactly one, else `many` (default
    `word` + "s"): plural(1, "epoch") == "1 epoch", plural(3, "class", "classes") == "3 classes".
    `grouped` writes the count with thousands separators: "60,000 rows"."""
    number = f"{count:,}" if grouped else str(count)
    return f"{number} {word if count == 1 else many or word + 's'}"
