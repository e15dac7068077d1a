"""Method adapters and their registry.

One file per method; each class subclasses :class:`~idlora_bench.methods.base.Method` and is registered in
:data:`METHODS` below. Sanity anchors (``gt``, ``still-reference``, ``swap-speaker``) live here; baseline
adapters in ``baselines/`` and the ID-LoRA reference in ``reference_impl/`` register the same way.
"""

from __future__ import annotations

from idlora_bench.methods.base import Method
from idlora_bench.methods.gt import GroundTruth
from idlora_bench.methods.still_reference import StillReference
from idlora_bench.methods.swap_speaker import SwapSpeaker
from idlora_bench.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")
for _method in (GroundTruth, StillReference, SwapSpeaker):
    METHODS.register(_method.name, _method)
# The ID-LoRA reference (LTX-2, diffusers + peft): imported on first use.
METHODS.register_lazy("idlora", "reference_impl.idlora.methods:IDLoRAMethod")
METHODS.register_lazy("ltx-zeroshot", "reference_impl.idlora.methods:LTXZeroShotMethod")

SANITY_METHODS = ("gt", "still-reference", "swap-speaker")


def build_method(name: str, **options: object) -> Method:
    return METHODS.get(name)(**options)


__all__ = ["METHODS", "SANITY_METHODS", "Method", "build_method"]
