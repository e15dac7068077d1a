from __future__ import annotations

import os
from pathlib import Path

import pytest

from idlora_bench.core.plugins import load_plugins

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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's cache from tests."""
    monkeypatch.setenv("IDLORA_BENCH_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.delenv("IDLORA_BENCH_DATA", raising=False)
    os.environ.pop("FAKE_METRIC_SLEEP_S", None)
