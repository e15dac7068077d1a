"""Exceptions with messages that name the file (and line/field) at fault."""

from __future__ import annotations

import os
from pathlib import Path


class BenchError(Exception):
    """Base class for every error idlora-bench raises on purpose (the CLI prints these without a traceback)."""


FAILURE_CODES: dict[str, str] = {
    "no_face": "no face found in the frames the metric reads",
    "no_face_track": "no face track long enough for lip sync",
    "no_speech": "no speech (silence, or too short to embed)",
    "no_audio": "the file has no audio samples",
    "no_video": "the file has no video frames",
    "too_short": "shorter than the metric or the protocol needs",
    "too_long": "longer than the metric can read without truncating",
    "empty_reference": "the reference text is empty after normalisation",
    "decode_error": "the file cannot be decoded",
    "missing_output": "the method wrote no output for the pair",
    "generation_error": "the method failed on the pair",
    "metric_error": "the metric crashed (a bug or a transient error; not cached)",
}
"""Every reason code a failure row can carry (``target_`` + code when the target failed)."""


class MediaError(BenchError):
    """A media file is missing, empty, corrupt or lacks a needed stream.

    ``code``: the failure code a sample gets when a metric meets this error (``decode_error``, or ``no_audio`` /
    ``no_video`` for a missing stream).
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, code: str = "decode_error") -> None:
        self.path = Path(path)
        self.problem = problem
        self.code = code
        super().__init__(f"{self.path}: {problem}")


class ValidationError(BenchError):
    """A manifest, card or record failed validation; the message names file, line and field."""


class RegistryError(BenchError, KeyError):
    """An unknown name was asked of a registry; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SampleFailure(BenchError):
    """A sample cannot be scored for a known reason (no face, no speech, too short, decode error).

    Metrics raise this; the runner records it as a failure row with ``reason`` = ``code: message``.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in FAILURE_CODES:
            raise ValueError(f"unknown failure code {code!r}; known: {', '.join(FAILURE_CODES)}")
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class WeightsError(BenchError):
    """A checkpoint is missing or does not match its weights card."""
