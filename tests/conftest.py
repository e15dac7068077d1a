from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from idlora_bench.core.plugins import load_plugins
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
FAKE_PLUGIN = TESTS_DIR / "plugins" / "fake_profile.py"

load_plugins(str(FAKE_PLUGIN))


@pytest.fixture
def synth_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh synthetic split named ``synth`` registered through $IDLORA_BENCH_SPLITS."""
    from synthetic import make_synthetic_split

    splits_root = tmp_path / "extra_splits"
    directory = make_synthetic_split(splits_root)
    monkeypatch.setenv("IDLORA_BENCH_SPLITS", str(splits_root))
    return directory


@pytest.fixture(scope="session")
def demo_offline_results(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """gt, still-reference and swap-speaker on the shipped demo split, ``offline`` profile, local executor: their
    result rows (all methods in one frame), computed once per session and shared by the end-to-end and Ray tests."""
    from idlora_bench import runner

    root = tmp_path_factory.mktemp("demo")
    frames = []
    for method in ("gt", "still-reference", "swap-speaker"):
        outcome = runner.run(method, "demo", profile="offline", out_dir=root / method, cache_path=root / "cache.sqlite")
        frames.append(outcome.results)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's cache from tests."""
    monkeypatch.setenv("IDLORA_BENCH_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.delenv("IDLORA_BENCH_DATA", raising=False)
    os.environ.pop("FAKE_METRIC_SLEEP_S", None)


# ------------------------------------------------------------------------------------------ shared helpers
# Imported by test modules (``from conftest import constructed_media, make_pair``): one definition of the
# hand-made pair and decoded media that metric tests score.
ZERO_SHA = "0" * 64


def make_pair(transcript: str = "hi", style: str = "s", environment: str = "e") -> Pair:
    """A valid same-video pair with the given texts; its clips are never read."""
    clip = {"path": "x.mp4", "sha256": ZERO_SHA, "source_video": "v", "start_s": 0, "duration_s": 1, "fps": 25}
    return Pair.model_validate({
        "pair_id": "p", "speaker_id": "s", "kind": "same-video",
        "reference": {**clip, "clip_id": "r", "path": "r.mp4"}, "target": {**clip, "clip_id": "t"},
        "prompt": f"[VISUAL]: v [SPEECH]: {transcript} [SOUNDS]: {style}, {environment}.",
        "transcript": transcript, "speaking_style": style, "environment_sounds": environment})


def constructed_media(frames: np.ndarray | None = None, audio: np.ndarray | None = None, rate: int = 16_000, *,
                      fps: float = 25.0, name: str = "constructed.mp4", sha: str = ZERO_SHA) -> DecodedMedia:
    """Decoded media built in memory: ``frames`` (T, H, W, 3) uint8 at ``fps``, ``audio`` (N,) or (C, N) at ``rate``."""
    return DecodedMedia(Path(name), sha, frames, fps if frames is not None else None,
                        None if audio is None else np.atleast_2d(audio).astype(np.float32),
                        rate if audio is not None else None)


def assert_cache_round_trip(features: dict) -> None:
    """Features survive the feature cache's encoding unchanged (types and values)."""
    from idlora_bench.store.cache import decode_features, encode_features

    back = decode_features(encode_features(features))
    assert back.keys() == features.keys()
    for key, value in features.items():
        if isinstance(value, np.ndarray):
            assert back[key].dtype == value.dtype and np.array_equal(back[key], value, equal_nan=True), key
        else:
            assert type(back[key]) is type(value) and back[key] == value, key
