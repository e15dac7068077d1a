"""Registries answer unknown names with the closest ones; the feature cache round-trips and persists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from idlora_bench.core.errors import RegistryError
from idlora_bench.methods import METHODS
from idlora_bench.metrics import build_profile
from idlora_bench.store.cache import FeatureCache, decode_features, encode_features


def test_unknown_method_suggests_closest() -> None:
    with pytest.raises(RegistryError, match=r"unknown method 'swap-speakr'\. Did you mean 'swap-speaker'\?"):
        METHODS.get("swap-speakr")


def test_unknown_profile_and_metric_subset_are_explained() -> None:
    with pytest.raises(RegistryError, match=r"unknown metric profile 'ofline'\. Did you mean 'offline'"):
        build_profile("ofline")
    with pytest.raises(RegistryError, match=r"not in profile 'offline'"):
        build_profile("offline", only=["clap"])
    assert [m.family for m in build_profile("offline", only=["wer"])] == ["wer"]


def test_feature_encoding_round_trip_keeps_types() -> None:
    features = {"embedding": np.arange(5, dtype=np.float32), "text": "hello", "n": 3, "x": 0.25, "flag": True,
                "empty": np.zeros(0, np.int64)}
    back = decode_features(encode_features(features))
    assert back["text"] == "hello" and back["n"] == 3 and back["x"] == 0.25 and back["flag"] is True
    assert back["embedding"].dtype == np.float32 and np.array_equal(back["embedding"], features["embedding"])
    assert back["empty"].shape == (0,)
    with pytest.raises(TypeError, match="unsupported"):
        encode_features({"bad": object()})


def test_cache_persists_ok_and_failure_entries(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with FeatureCache(path) as cache:
        cache.put_ok("k1", "m", "1", "sha", {"v": 1.5})
        cache.put_failure("k2", "m", "1", "sha", "no_face: none found")
    with FeatureCache(path) as cache:
        assert cache.get("k1").features == {"v": 1.5}
        failed = cache.get("k2")
        assert failed.status == "failed" and failed.features is None and failed.reason == "no_face: none found"
        assert cache.get("k3") is None and cache.hits == 2 and cache.misses == 1 and len(cache) == 2


def test_cache_key_changes_with_version_params_and_media() -> None:
    [metric] = build_profile("offline", only=["wer"])
    key = metric.cache_key("a" * 64)
    assert key != metric.cache_key("b" * 64)
    other = type(metric)()
    other.params = {**metric.params, "sample_rate_hz": 8000}  # instance override
    assert other.cache_key("a" * 64) != key


def test_a_metric_whose_library_is_missing_breaks_only_its_profile_and_doctor_names_the_package(
        capsys: pytest.CaptureFixture[str]) -> None:
    from idlora_bench.cli import main, metric_problems
    from idlora_bench.core.errors import BenchError
    from idlora_bench.metrics import METRICS, PROFILES

    class NeedsMissingLibrary(type(build_profile("fake")[1])):  # MeanLuma, weights-free
        name = "luma.needs_missing"
        requires = {"no_such_module_xyz": "no-such-package==1.0"}

    METRICS.register(NeedsMissingLibrary.name, NeedsMissingLibrary)
    METRICS.register_lazy("luma.unimportable", "no_such_module_abc.metric:Luma")
    PROFILES.register("broken-test", [NeedsMissingLibrary.name])
    PROFILES.register("unimportable-test", ["luma.unimportable"])
    try:
        with pytest.raises(BenchError, match=r"no_such_module_xyz \(no-such-package==1.0\)"):
            build_profile("broken-test")
        with pytest.raises(BenchError, match=r"metric 'luma.unimportable' cannot be imported .*no_such_module_abc"):
            build_profile("unimportable-test")
        assert [m.name for m in build_profile("fake")] == ["audio_rms.fake", "luma.fake"]  # others unaffected
        assert metric_problems(NeedsMissingLibrary.name) == [
            "luma.needs_missing: package no_such_module_xyz is not installed -> pip install -c constraints.txt "
            "no-such-package==1.0"]
        assert main(["doctor"]) == 0  # the offline profile is ready; the broken ones are listed
        out = " ".join(capsys.readouterr().out.split())
        assert "profile broken-test: not ready" in out and "no-such-package==1.0" in out
        assert "profile unimportable-test: not ready" in out and "no_such_module_abc" in out
        assert main(["metrics", "list"]) == 0
    finally:
        for profile in ("broken-test", "unimportable-test"):
            PROFILES._entries.pop(profile, None)
        METRICS._entries.pop(NeedsMissingLibrary.name, None)
        METRICS._lazy.pop("luma.unimportable", None)
