"""Exceptions with messages that name the file (and line/field) at fault."""

from __future__ import annotations

import os
from pathlib import Path


class BenchError(Exception):
    """Base class for every error idlora-bench raises on purpose (the CLI prints these without a traceback)."""


class MediaError(BenchError):
    """A media file is missing, empty, corrupt or lacks a needed stream."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
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
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class WeightsError(BenchError):
    """A checkpoint is missing or does not match its weights card."""
