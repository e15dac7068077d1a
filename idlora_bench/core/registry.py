"""A name -> object registry whose unknown-name errors list the closest names ("did you mean").

Entries are registered either as objects or lazily as ``"module:attribute"`` strings, imported on first
``get``: a registry of metrics or methods then costs nothing at start-up, and an entry whose optional
library is missing fails only when it is asked for, with a message that names the missing module.

A *family* is a ``"module:function"`` returning ``{name: entry}`` for names made by composition (e.g. the cascade
baselines ``<tts>+<video>``); families are imported the first time a name is listed or not found.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from importlib import metadata
from typing import Generic, TypeVar

from idlora_bench.core.errors import BenchError, RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Holds named entries of one kind (``what``: "method", "metric", "split", ...)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._families: list[str] = []

    def register(self, name: str, entry: T) -> T:
        self._check_new(name)
        self._entries[name] = entry
        return entry

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``module:attribute``, imported on first ``get`` (keeps heavy imports off start-up)."""
        self._check_new(name)
        if target.count(":") != 1:
            raise ValueError(f"{self.what} {name!r}: target must be 'module:attribute', got {target!r}")
        self._lazy[name] = target

    def register_entry_points(self, group: str) -> list[str]:
        """Register, lazily, every entry point of an installed distribution in ``group`` (pyproject
        ``[project.entry-points."<group>"]``); names already registered are left as they are."""
        added = []
        for entry_point in metadata.entry_points(group=group):
            if entry_point.name not in self:
                self.register_lazy(entry_point.name, entry_point.value)
                added.append(entry_point.name)
        return added

    def register_family(self, target: str) -> None:
        """Register a ``module:function`` returning ``{name: entry}``, loaded on first listing or unknown name."""
        if target.count(":") != 1:
            raise ValueError(f"{self.what} family: target must be 'module:function', got {target!r}")
        self._families.append(target)

    def register_family_entry_points(self, group: str) -> None:
        """Register every entry point in ``group`` as a family (see :meth:`register_family`)."""
        for entry_point in metadata.entry_points(group=group):
            self.register_family(entry_point.value)

    def _load_families(self) -> None:
        while self._families:
            module, function = self._families.pop(0).split(":")
            try:
                members = getattr(importlib.import_module(module), function)()
            except ImportError as exc:
                raise BenchError(f"{self.what} family {module}:{function} cannot be imported: {exc}") from exc
            for name, entry in members.items():
                if name not in self:
                    self._entries[name] = entry

    def target(self, name: str) -> str | None:
        """The ``module:attribute`` of a lazy entry not imported yet (None otherwise)."""
        return self._lazy.get(name)

    def get(self, name: str) -> T:
        if name in self._lazy:
            module, attribute = self._lazy[name].split(":")
            try:
                loaded = getattr(importlib.import_module(module), attribute)
            except ImportError as exc:
                missing = f" (missing module {exc.name!r})" if getattr(exc, "name", None) else ""
                raise BenchError(f"{self.what} {name!r} cannot be imported from {module}{missing}: {exc}. "
                                 "Install the package it needs (bench doctor lists them).") from exc
            self._entries[name] = loaded
            del self._lazy[name]
        if name not in self._entries:
            self._load_families()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.what} {name!r}.{hint} Known: {', '.join(self.names()) or '(none)'}."

    def names(self) -> list[str]:
        self._load_families()
        return sorted([*self._entries, *self._lazy])

    def _check_new(self, name: str) -> None:
        if name in self._entries or name in self._lazy:
            raise ValueError(f"{self.what} {name!r} is registered twice")

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
