"""Method adapters and their registry.

One file per method; each class subclasses :class:`~idlora_bench.methods.base.Method`. The sanity anchors
(``gt``, ``still-reference``, ``swap-speaker``) live here and are registered below. Methods outside this package
(the ID-LoRA reference in ``reference_impl/``, baselines in ``baselines/``, third-party packages) register through
the ``idlora_bench.methods`` entry-point group of their distribution's ``pyproject.toml``::

    [project.entry-points."idlora_bench.methods"]
    idlora = "reference_impl.idlora.methods:IDLoRAMethod"

and are imported on first use. Composed names (the cascades ``<tts>+<video>`` of ``baselines/``) come from the
``idlora_bench.method_families`` group: a function returning ``{name: Method class}``.
"""

from __future__ import annotations

from idlora_bench.core.registry import Registry
from idlora_bench.core.types import ANCHOR_METHODS
from idlora_bench.methods.base import Method, MethodOptions
from idlora_bench.methods.gt import GroundTruth
from idlora_bench.methods.still_reference import StillReference
from idlora_bench.methods.swap_speaker import SwapSpeaker

ENTRY_POINT_GROUP = "idlora_bench.methods"
FAMILY_ENTRY_POINT_GROUP = "idlora_bench.method_families"  # functions returning {name: Method class}
METHODS: Registry[type[Method]] = Registry("method")
for _method in (GroundTruth, StillReference, SwapSpeaker):
    METHODS.register(_method.name, _method)
METHODS.register_entry_points(ENTRY_POINT_GROUP)
METHODS.register_family_entry_points(FAMILY_ENTRY_POINT_GROUP)

SANITY_METHODS = ANCHOR_METHODS


def build_method(name: str, **options: object) -> Method:
    return METHODS.get(name)(**options)


__all__ = ["ENTRY_POINT_GROUP", "METHODS", "SANITY_METHODS", "Method", "MethodOptions", "build_method"]
