"""Transcript normalisation for WER: the paper's (:func:`paper_normalise`), the ID-LoRA authors' released one
(:func:`authors_normalise`) and Whisper's English normaliser."""

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


_AUTHORS_NON_WORD = re.compile(r"[^\w\s]")
_AUTHORS_SPACE = re.compile(r"\s+")


def authors_normalise(text: str) -> str:
    """The ID-LoRA authors' WER normalisation (``WhisperWERMetric._normalize_text``, ID-LoRA
    ``packages/ltx-trainer/src/ltx_trainer/metrics/evaluation_metrics.py:1006-1017``, commit 399bf3e):
    lowercase, strip, DELETE every character that is neither a word character nor whitespace, collapse
    whitespace runs to one space, strip.

    Unlike :func:`paper_normalise` nothing is replaced by a space, so hyphens, dashes, apostrophes and colons glue
    their neighbours together (``"ID-LoRA"`` -> ``"idlora"``, ``"He said—no"`` -> ``"he saidno"``,
    ``"3:30"`` -> ``"330"``); ``_`` and digits are word characters and stay; there is no Unicode normalisation.
    """
    text = text.lower().strip()
    text = _AUTHORS_NON_WORD.sub("", text)
    text = _AUTHORS_SPACE.sub(" ", text)
    return text.strip()


@lru_cache(maxsize=1)
def whisper_normaliser() -> Any:
    """Whisper's English text normaliser (from the installed openai-whisper package)."""
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def whisper_normalise(text: str) -> str:
    return whisper_normaliser()(text)
