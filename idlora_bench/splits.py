"""Compatibility path for this release: the split registry now lives in :mod:`idlora_bench.data.splits`."""

from idlora_bench.data.splits import (  # noqa: F401
    DATA_ROOT_ENV,
    ResolvedPair,
    Split,
    ValidationReport,
    load_card,
    load_split,
    split_registry,
    validate_split,
)
