"""The benchmark prompt rewritten the way Kling's audio-video models are prompted (pure functions, no I/O).

A pair's prompt is ``[VISUAL]: ... [SPEECH]: ... [SOUNDS]: ...`` with the words, the speaking style and the
environment sounds also as separate fields. Kling 2.6 (``sound: on``) is prompted in plain prose: the scene, who
speaks, the spoken words *in quotation marks*, how they are said, and the ambience; a simple grammar works best and
the prompt holds at most 2,500 characters. Sources (third-party summaries of Kling's guide, matched by meaning, not
copied): inference-sh/grid ``api/klingai/docs/04-video-image2video.md`` "Voice Support (V2.6+)" (the person ...
says "..."; "Simple grammar structure works best"), fal.ai's Kling 2.6 Pro page
(https://fal.ai/docs/model-api-reference/video-generation-api/kling-video-v2.6-pro: ``A king walks slowly and says
"..."``; English and Chinese speech), WaveSpeed's Kling 2.6 Pro page
(https://wavespeed.ai/docs/docs-api/kwaivgi/kling-v2.6-pro/image-to-video: describe motion, voice style, ambience).

The template is versioned (:data:`TEMPLATE_VERSION`, part of the method's config): changing the wording makes a
new config, never silently different outputs under an old one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from idlora_bench.core.types import PROMPT_PATTERN

TEMPLATE_VERSION = "kling-audio-prompt-v1"
MAX_PROMPT_CHARS = 2500
_DOUBLE_QUOTES = re.compile(r"[\"\u201c\u201d\u201e\u00ab\u00bb]")


@dataclass(frozen=True)
class KlingPrompt:
    """The text sent (``prompt``, ``negative_prompt``), the benchmark prompt it came from (``original``) and the
    parts used (``visual``, ``speech``, ``style``, ``sounds``)."""

    prompt: str
    negative_prompt: str
    original: str
    visual: str
    speech: str
    style: str
    sounds: str
    template: str = TEMPLATE_VERSION

    def record(self) -> dict[str, Any]:
        """JSON-able provenance of the adaptation."""
        return asdict(self)


def _clean(text: str) -> str:
    """Whitespace collapsed, trailing sentence punctuation removed (the template adds its own)."""
    return re.sub(r"\s+", " ", text).strip().rstrip(" .;,")


def _sentence(text: str) -> str:
    """``text`` as one sentence: capitalised first letter, ending with a full stop."""
    text = _clean(text)
    return (text[:1].upper() + text[1:] + ".") if text else ""


def quote_speech(words: str) -> str:
    """The spoken words in double quotation marks; quotation marks inside become single ones (so the speech cannot
    end early), whitespace is collapsed; the words' own punctuation is kept."""
    inner = _DOUBLE_QUOTES.sub("'", re.sub(r"\s+", " ", words).strip())
    return f'"{inner}"'


def adapt_prompt(original: str, transcript: str, style: str, sounds: str, negative_prompt: str = "",
                 max_chars: int = MAX_PROMPT_CHARS) -> KlingPrompt:
    """Kling's prompt for one pair::

        <visual sentence> The person on screen speaks, saying: "<transcript>" Voice: <style>. Ambient sound: <sounds>.

    ``original``: the pair's ``[VISUAL]: ... [SPEECH]: ... [SOUNDS]: ...`` prompt (its visual part is used; when it
    does not have that form the whole text is the visual description); ``transcript``, ``style``, ``sounds``: the
    pair's fields. Raises ValueError when the result exceeds ``max_chars`` (Kling's limit: 2,500 characters) or the
    transcript is empty; nothing is cut silently.
    """
    match = PROMPT_PATTERN.match(original)
    visual = match["visual"] if match else original
    if not transcript.strip():
        raise ValueError("the pair has no transcript: Kling would be asked for speech without words")
    parts = [_sentence(visual), f"The person on screen speaks, saying: {quote_speech(transcript)}"]
    if _clean(style):
        parts.append(f"Voice: {_clean(style)}.")
    if _clean(sounds):
        parts.append(f"Ambient sound: {_clean(sounds)}.")
    prompt = " ".join(part for part in parts if part)
    if len(prompt) > max_chars:
        raise ValueError(f"the Kling prompt is {len(prompt)} characters; the API accepts at most {max_chars} "
                         "(shorten the pair's [VISUAL] text)")
    speech = re.sub(r"\s+", " ", transcript).strip()
    return KlingPrompt(prompt, negative_prompt.strip(), original, _clean(visual), speech, _clean(style), _clean(sounds))
