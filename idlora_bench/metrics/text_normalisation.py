"""Transcript normalisation for WER: the paper's (:func:`paper_normalise`) and Whisper's English normaliser."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

_PUNCTUATION = re.compile(r"[^\w\s']|_")


def paper_normalise(text: str) -> str:
    """The paper's WER normalisation: lowercase, punctuation stripped, whitespace collapsed.

    Apostrophes inside words are kept (``don't`` stays one word); numbers are not spelled out.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCTUATION.sub(" ", text)
    text = re.sub(r"(^|\s)'+|'+(\s|$)", " ", text)  # quotes, not apostrophes
    return " ".join(text.split())


@lru_cache(maxsize=1)
def whisper_normaliser() -> Any:
    """Whisper's English text normaliser (from the installed openai-whisper package)."""
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def whisper_normalise(text: str) -> str:
    return whisper_normaliser()(text)
