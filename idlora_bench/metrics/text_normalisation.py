"""Transcript normalisation for WER."""

from __future__ import annotations

import re
import unicodedata

_PUNCTUATION = re.compile(r"[^\w\s']|_")


def paper_normalise(text: str) -> str:
    """The paper's WER normalisation: lowercase, punctuation stripped, whitespace collapsed.

    Apostrophes inside words are kept (``don't`` stays one word); numbers are not spelled out.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCTUATION.sub(" ", text)
    text = re.sub(r"(^|\s)'+|'+(\s|$)", " ", text)  # quotes, not apostrophes
    return " ".join(text.split())
