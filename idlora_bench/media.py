"""Compatibility path for this release: media I/O now lives in :mod:`idlora_bench.data.media`."""

from idlora_bench.data.media import *  # noqa: F401,F403
from idlora_bench.data.media import __all__  # noqa: F401
