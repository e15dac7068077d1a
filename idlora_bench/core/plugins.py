"""Load user plugins that register extra methods, metrics or profiles.

``$IDLORA_BENCH_PLUGINS`` holds comma-separated entries, each a module name (``my_pkg.bench_methods``) or a
path to a ``.py`` file. Importing a plugin runs its registrations, e.g.::

    from idlora_bench.methods import METHODS
    METHODS.register(MyMethod.name, MyMethod)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from idlora_bench.core.errors import BenchError

PLUGINS_ENV = "IDLORA_BENCH_PLUGINS"
_loaded: set[str] = set()


def load_plugins(spec: str | None = None) -> list[str]:
    """Import every plugin named in ``spec`` (default: ``$IDLORA_BENCH_PLUGINS``) once; return their names."""
    spec = os.environ.get(PLUGINS_ENV, "") if spec is None else spec
    loaded = []
    for entry in (item.strip() for item in spec.split(",")):
        if not entry or entry in _loaded:
            continue
        if entry.endswith(".py"):
            path = Path(entry)
            if not path.is_file():
                raise BenchError(f"plugin {path} (from ${PLUGINS_ENV}) does not exist")
            module_name = f"idlora_bench_plugin_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(entry)
            except ImportError as exc:
                raise BenchError(f"plugin module {entry!r} (from ${PLUGINS_ENV}) cannot be imported: {exc}") from exc
        _loaded.add(entry)
        loaded.append(entry)
    return loaded
