"""A name -> object registry whose unknown-name errors list the closest names ("did you mean")."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from idlora_bench.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Holds named entries of one kind (``what``: "method", "metric", "split", ...)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries or name in self._lazy:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``module:attribute``, imported on first ``get`` (keeps heavy imports off start-up)."""
        if name in self._entries or name in self._lazy:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._lazy[name] = target

    def decorator(self, name_attribute: str = "name") -> Callable[[T], T]:
        """Class decorator registering the class under its ``name`` attribute."""

        def wrap(entry: T) -> T:
            return self.register(getattr(entry, name_attribute), entry)

        return wrap

    def get(self, name: str) -> T:
        if name in self._lazy:
            import importlib

            module, attribute = self._lazy.pop(name).split(":")
            self._entries[name] = getattr(importlib.import_module(module), attribute)
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.what} {name!r}.{hint} Known: {', '.join(self.names()) or '(none)'}."

    def names(self) -> list[str]:
        return sorted([*self._entries, *self._lazy])

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries) + len(self._lazy)
