"""The contract every registered metric keeps (in the spirit of torchmetrics' shared tester).

For every metric in the registry: the name and file rule, metadata that reports and ``bench doctor`` read,
parameters that serialise to JSON, a cache key that is stable and changes with version, params and weights, and
metrics sharing features agree on them. For every metric that runs here without downloaded weights (the ``offline``
profile, whose weights ship in PyPI packages, and the test plugin's): real features round-trip through the cache
encoding, compare gives a finite value, and unscorable inputs fail with a known reason code, never another error.
The ``paper`` metrics' features are round-tripped in their own test files, on tiny weights in the real formats.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from conftest import assert_cache_round_trip, constructed_media, make_pair
from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import FAILURE_CODES, MediaError, SampleFailure
from idlora_bench.data.media import decode
from idlora_bench.data.splits import load_split
from idlora_bench.metrics import METRICS, PROFILES, MetricInput

NAMES = METRICS.names()
RUNNABLE = [*PROFILES.get("offline"), *PROFILES.get("fake"), *PROFILES.get("fake-shared")]
SHA = "ab" * 32
PROBE_WEIGHTS = WeightsFile(model="contract-probe", file="probe.bin", source="url:https://example.invalid/probe.bin",
                            sha256="f" * 64, licence="none")


def _in_package(cls: type) -> bool:
    return cls.__module__.startswith("idlora_bench.metrics.")


@pytest.mark.parametrize("name", NAMES)
def test_name_family_and_file_follow_the_rule(name: str) -> None:
    cls = METRICS.get(name)
    assert cls.name == name
    assert re.fullmatch(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*", name), f"{name}: not <family>.<backend>"
    family, backend = name.split(".")
    assert cls.family == family
    if _in_package(cls):
        assert cls.__module__ == f"idlora_bench.metrics.{family}_{backend}", (
            f"{name} lives in {cls.__module__}; the rule is idlora_bench/metrics/{family}_{backend}.py")


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_complete_and_params_are_json(name: str) -> None:
    cls = METRICS.get(name)
    assert cls.direction in ("higher", "lower") and isinstance(cls.version, str) and cls.version
    assert cls.needs and set(cls.needs) <= set(MetricInput)
    assert isinstance(cls.digits, int) and 0 <= cls.digits <= 6
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in cls.requires.items())
    json.dumps(cls.params, allow_nan=False)  # strict JSON: the manifest and the cache key are built from it
    if _in_package(cls):
        assert cls.label and cls.description and cls.unit and cls.paper_reference, f"{name}: display metadata"
    provenance = cls().provenance()
    assert provenance.label == (cls.label or cls.family) and provenance.digits == cls.digits


@pytest.mark.parametrize("name", NAMES)
def test_cache_key_is_stable_and_changes_with_version_params_and_weights(name: str) -> None:
    cls = METRICS.get(name)
    key = cls().cache_key(SHA)
    assert re.fullmatch(r"[0-9a-f]{64}", key) and key == cls().cache_key(SHA)
    assert cls().cache_key("cd" * 32) != key
    changed = {}
    for attribute, value in (("version", f"{cls.version}+probe"), ("params", {**cls.params, "contract_probe": 1}),
                             ("weights", (*cls.weights, PROBE_WEIGHTS))):
        metric = cls()
        setattr(metric, attribute, value)  # instance attribute: the class is untouched
        changed[attribute] = metric.cache_key(SHA) != key
    assert changed == {"version": True, "params": True, "weights": True}


def test_metrics_sharing_features_agree_on_version_params_and_weights() -> None:
    groups: dict[str, list[type]] = {}
    for name in NAMES:
        cls = METRICS.get(name)
        if cls.features_id:
            groups.setdefault(cls.features_id, []).append(cls)
    assert groups, "no metric shares features (LSE-D/LSE-C and the two WERs should)"
    for features_id, members in groups.items():
        keys = {member().cache_key(SHA) for member in members}
        assert len(keys) == 1, f"{features_id}: {[m.name for m in members]} would not share one cache entry"


def test_failure_codes_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown failure code 'no_luck'"):
        SampleFailure("no_luck", "x")


@pytest.fixture(scope="module")
def demo_target():
    split = load_split("demo")
    return decode(split.media_path(split.pairs[0].target))


def _unscorable_inputs() -> list:
    silent_black = constructed_media(np.zeros((30, 64, 64, 3), np.uint8), np.zeros(16_000), name="silent-black.mp4",
                                     sha="11" * 32)
    rng = np.random.default_rng(0)
    noise = constructed_media(rng.integers(0, 256, (30, 64, 64, 3), dtype=np.uint8),
                              0.3 * rng.standard_normal(16_000), name="noise.mp4", sha="22" * 32)
    video_only = constructed_media(np.zeros((30, 64, 64, 3), np.uint8), None, name="video-only.mp4", sha="33" * 32)
    audio_only = constructed_media(None, 0.3 * rng.standard_normal(16_000), name="audio-only.mp4", sha="44" * 32)
    return [silent_black, noise, video_only, audio_only]


@pytest.mark.parametrize("name", RUNNABLE)
def test_real_features_round_trip_and_bad_inputs_fail_with_known_codes(name: str, demo_target) -> None:
    metric = METRICS.get(name)()
    metric.load()
    features = metric.extract(demo_target)
    assert_cache_round_trip(features)
    score = metric.compare(features, features if metric.uses_target else None, make_pair("hello"))
    assert math.isfinite(score.value)
    json.dumps(score.details, allow_nan=False, default=float)
    for media in _unscorable_inputs():
        try:
            assert_cache_round_trip(metric.extract(media))
        except SampleFailure as failure:
            assert failure.code in FAILURE_CODES
        except MediaError as error:  # a missing stream: the runner records its code
            assert error.code in ("no_audio", "no_video")
