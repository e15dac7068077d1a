"""Ray executor and metric-major scoring: the same rows as the local loop, resumable after SIGKILL of the driver,
one metric's model at a time, clear errors instead of a silent fall back.

One local Ray instance for the module (2 CPUs, no GPU, no dashboard), shut down at the end. The fake profile runs
on the synthetic split; the ``offline`` profile runs gt and still-reference on the whole demo split.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import FAKE_PLUGIN, REPO_ROOT

from idlora_bench import runner
from idlora_bench.core.errors import BenchError, ValidationError
from idlora_bench.core.io import file_sha256
from idlora_bench.data.splits import load_split
from idlora_bench.executors.plan import FeaturePlan, ScoreItem
from idlora_bench.metrics import METRICS
from idlora_bench.store.run_files import read_generation_record

try:
    import ray
except ImportError:  # the metric-major tests still run
    ray = None

needs_ray = pytest.mark.skipif(
    ray is None, reason="the ray package is not installed (.venv/bin/pip install -c constraints.txt ray==2.60.0)")

STILL_FEATURES = 6 * 2 + 3
"""still-reference on the synthetic split, fake profile: 6 still videos x 2 metrics + 3 distinct targets (audio)."""


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray instance for this module; yields its GCS address (for drivers in other processes)."""
    assert ray is not None
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _plugins_for_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray workers load the fake profile from $IDLORA_BENCH_PLUGINS (forwarded to them by the executor)."""
    monkeypatch.setenv("IDLORA_BENCH_PLUGINS", str(FAKE_PLUGIN))


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["run_id"]).reset_index(drop=True)


def _local_on_same_videos(source: Path, out: Path, cache: Path, method: str, **kwargs: Any) -> runner.RunOutcome:
    """The local loop scoring the videos another run generated (an encoder may not give identical bytes twice)."""
    shutil.copytree(source / "videos", out / "videos")
    outcome = runner.run(method, kwargs.pop("split", "synth"), out_dir=out, cache_path=cache, **kwargs)
    assert outcome.counts["generated"] == 0
    return outcome


@needs_ray
def test_ray_rows_equal_local_rows_fake_profile(synth_split: Path, tmp_path: Path, ray_address: str) -> None:
    for method in ("gt", "still-reference"):
        on_ray = runner.run(method, "synth", profile="fake", out_dir=tmp_path / "ray" / method,
                            cache_path=tmp_path / "ray.sqlite", executor="ray")
        assert on_ray.counts["generated"] == 6
        for pair in load_split("synth").pairs:  # the driver wrote each output and its record
            video = on_ray.run_dir / "videos" / f"{pair.pair_id}.mp4"
            record = read_generation_record(video.with_suffix(".json"))
            assert record is not None and record.status == "ok" and record.sha256 == file_sha256(video)
        local = _local_on_same_videos(on_ray.run_dir, tmp_path / "local" / method, tmp_path / "local.sqlite", method,
                                      profile="fake")
        pd.testing.assert_frame_equal(_rows(on_ray.results), _rows(local.results))
        assert set(on_ray.results["status"]) == {"ok"}
        assert on_ray.counts["features_computed"] == local.counts["features_computed"]
    with sqlite3.connect(tmp_path / "ray.sqlite") as ray_db, sqlite3.connect(tmp_path / "local.sqlite") as local_db:
        query = "SELECT key, status, reason, payload FROM features ORDER BY key"
        assert ray_db.execute(query).fetchall() == local_db.execute(query).fetchall()


@needs_ray
def test_ray_rows_equal_local_rows_offline_profile_on_the_demo_split(demo_offline_results: pd.DataFrame,
                                                                     tmp_path: Path, ray_address: str) -> None:
    """README command 1's job through Ray: generation and all four offline metrics on the 16 demo pairs, row for
    row equal to the session's local run (``conftest.demo_offline_results``, its own videos and feature cache)."""
    for method in ("gt", "still-reference"):
        on_ray = runner.run(method, "demo", profile="offline", out_dir=tmp_path / method,
                            cache_path=tmp_path / "ray.sqlite", executor="ray")
        assert on_ray.counts["generated"] == len(load_split("demo").pairs)
        local = demo_offline_results[demo_offline_results["method"] == method]
        assert len(local) == 4 * len(load_split("demo").pairs) and set(local["status"]) == {"ok"}
        pd.testing.assert_frame_equal(_rows(on_ray.results), _rows(local))


DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path

    from idlora_bench import runner
    from idlora_bench.core.plugins import load_plugins

    load_plugins()
    runner.run("still-reference", "synth", profile="fake", out_dir=Path(sys.argv[1]), cache_path=Path(sys.argv[2]),
               executor="ray", ray_address=sys.argv[3])
""")


def _cached(cache: Path) -> int:
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache) as db:
            return int(db.execute("SELECT COUNT(*) FROM features").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@needs_ray
def test_sigkill_driver_then_resume_recomputes_nothing_cached(synth_split: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               ray_address: str) -> None:
    out, cache = tmp_path / "killed", tmp_path / "killed.sqlite"
    env = dict(os.environ, FAKE_METRIC_SLEEP_S="0.4", IDLORA_BENCH_RAY_ENV="FAKE_METRIC_SLEEP_S")
    with open(tmp_path / "driver.log", "wb") as log:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(out), str(cache), ray_address], cwd=REPO_ROOT,
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline and _cached(cache) < 4 and driver.poll() is None:
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL, (tmp_path / "driver.log").read_text()
    cached_before = _cached(cache)
    assert 4 <= cached_before < STILL_FEATURES
    records_before = {p.stem: (p.with_suffix(".mp4").stat().st_mtime_ns, p.read_bytes())
                      for p in (out / "videos").glob("*.json")}
    assert not (out / "results-fake.jsonl").exists()

    resumed = runner.run("still-reference", "synth", profile="fake", out_dir=out, cache_path=cache, executor="ray")
    assert resumed.counts["generated"] == 6 - len(records_before)
    assert resumed.counts["features_computed"] == STILL_FEATURES - cached_before  # nothing cached is computed again
    assert _cached(cache) == STILL_FEATURES
    for pair_id, (mtime, record) in records_before.items():  # no output with a record was generated again
        assert (out / "videos" / f"{pair_id}.mp4").stat().st_mtime_ns == mtime
        assert (out / "videos" / f"{pair_id}.json").read_bytes() == record

    uninterrupted = _local_on_same_videos(out, tmp_path / "ref", tmp_path / "ref.sqlite", "still-reference",
                                          profile="fake")
    assert uninterrupted.counts["features_computed"] == STILL_FEATURES
    pd.testing.assert_frame_equal(_rows(resumed.results), _rows(uninterrupted.results))
    counts = json.loads((out / "counts-fake.json").read_text())
    assert counts["features_computed"] == resumed.counts["features_computed"]


def _spy(monkeypatch: pytest.MonkeyPatch, events: list[str]) -> None:
    """Record loads, extractions and releases of the fake metrics, in order."""
    for name in ("audio_rms.fake", "luma.fake"):
        cls = METRICS.get(name)
        original_extract, original_load = cls.extract, cls._load

        def extract(self: Any, media: Any, _original: Any = original_extract, _name: str = name) -> Any:
            events.append(f"extract {_name}")
            return _original(self, media)

        def load(self: Any, paths: Any, _original: Any = original_load, _name: str = name) -> Any:
            events.append(f"load {_name}")
            return _original(self, paths)

        monkeypatch.setattr(cls, "extract", extract)
        monkeypatch.setattr(cls, "_load", load)
    release = runner.release_metric

    def released(metrics: list[Any], index: int) -> None:
        events.append(f"release {metrics[index].name}")
        release(metrics, index)

    monkeypatch.setattr(runner, "release_metric", released)


def _compressed(events: list[str]) -> list[str]:
    """Consecutive repeats collapsed: ``[a, a, b] -> [a, b]``."""
    return [event for position, event in enumerate(events) if position == 0 or events[position - 1] != event]


def test_one_metric_at_a_time_is_metric_major_with_identical_rows(synth_split: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    reference = runner.run("still-reference", "synth", profile="fake", out_dir=tmp_path / "all",
                           cache_path=tmp_path / "all.sqlite")
    events: list[str] = []
    _spy(monkeypatch, events)
    shutil.copytree(tmp_path / "all" / "videos", tmp_path / "major" / "videos")
    major = runner.run("still-reference", "synth", profile="fake", out_dir=tmp_path / "major",
                       cache_path=tmp_path / "major.sqlite", one_metric_at_a_time=True)
    assert _compressed(events) == ["load audio_rms.fake", "extract audio_rms.fake", "release audio_rms.fake",
                                   "load luma.fake", "extract luma.fake", "release luma.fake"]
    assert events.count("extract audio_rms.fake") == 6 + 3 and events.count("extract luma.fake") == 6
    pd.testing.assert_frame_equal(_rows(major.results), _rows(reference.results))
    assert major.counts["features_computed"] == reference.counts["features_computed"] == STILL_FEATURES
    assert not any(key.startswith("gpu_peak_bytes") for key in major.counts)  # no GPU here: nothing to report

    again = runner.run("still-reference", "synth", profile="fake", out_dir=tmp_path / "major",
                       cache_path=tmp_path / "major.sqlite", one_metric_at_a_time=True)
    assert again.counts["features_computed"] == 0 and again.counts["files_decoded"] == 0
    pd.testing.assert_frame_equal(_rows(again.results), _rows(reference.results))


def test_one_metric_at_a_time_extracts_shared_features_once(synth_split: Path, tmp_path: Path) -> None:
    reference = runner.run("still-reference", "synth", profile="fake-shared", out_dir=tmp_path / "all",
                           cache_path=tmp_path / "all.sqlite")
    shutil.copytree(tmp_path / "all" / "videos", tmp_path / "major" / "videos")
    major = runner.run("still-reference", "synth", profile="fake-shared", out_dir=tmp_path / "major",
                       cache_path=tmp_path / "major.sqlite", one_metric_at_a_time=True)
    assert major.counts["features_computed"] == 6 + 3  # audio_rms and audio_rms_db share one extraction per file
    pd.testing.assert_frame_equal(_rows(major.results), _rows(reference.results))


@needs_ray
def test_ray_one_metric_at_a_time_computes_metric_after_metric(synth_split: Path, tmp_path: Path,
                                                               ray_address: str) -> None:
    cache = tmp_path / "ray.sqlite"
    on_ray = runner.run("still-reference", "synth", profile="fake", out_dir=tmp_path / "ray", cache_path=cache,
                        executor="ray", one_metric_at_a_time=True)
    with sqlite3.connect(cache) as db:  # the cache's commit times show the order
        times = dict(db.execute("SELECT metric, MAX(created_unix) FROM features GROUP BY metric").fetchall())
        first_luma = db.execute("SELECT MIN(created_unix) FROM features WHERE metric = 'luma.fake'").fetchone()[0]
    assert times["audio_rms.fake"] < first_luma
    local = _local_on_same_videos(on_ray.run_dir, tmp_path / "local", tmp_path / "local.sqlite", "still-reference",
                                  profile="fake")
    pd.testing.assert_frame_equal(_rows(on_ray.results), _rows(local.results))
    assert on_ray.counts["features_computed"] == STILL_FEATURES


@needs_ray
def test_ray_errors_name_the_fix_and_never_fall_back(synth_split: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, ray_address: str) -> None:
    out = tmp_path / "never"
    with pytest.raises(ValidationError, match="expected one of local, ray"):
        runner.run("gt", "synth", profile="fake", out_dir=out, executor="spark")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="add --executor ray"):
        runner.run("gt", "synth", profile="fake", out_dir=out, ray_address="auto")
    with pytest.raises(BenchError, match="ray start --head"):  # checked before the connection this process holds
        with monkeypatch.context() as patched:
            patched.setattr(ray, "is_initialized", lambda: False)
            runner.run("gt", "synth", profile="fake", out_dir=out, executor="ray", ray_address="127.0.0.1:1")
    with pytest.raises(BenchError, match=r"pip install -c constraints.txt ray==2\.60\.0"):
        with monkeypatch.context() as patched:
            patched.setitem(sys.modules, "ray", None)  # as if ray were not installed
            runner.run("gt", "synth", profile="fake", out_dir=out, executor="ray")
    assert not out.exists()  # nothing was generated or scored
    with pytest.raises(BenchError, match="asks for 1 GPU but the whole Ray cluster has 0"):
        runner.run("gt", "synth", profile="fake", out_dir=tmp_path / "gpu", executor="ray",
                   ray_num_gpus_per_generator=1)


@needs_ray
def test_a_worker_that_computes_other_features_than_the_driver_is_refused(synth_split: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          ray_address: str) -> None:
    # the driver's luma metric claims another version than the workers' (as with two package versions on the nodes)
    monkeypatch.setattr(METRICS.get("luma.fake"), "version", "driver-only")
    with pytest.raises(BenchError, match="another version, parameters or weights on this Ray worker") as error:
        runner.run("gt", "synth", profile="fake", metrics=["luma"], out_dir=tmp_path / "skew",
                   cache_path=tmp_path / "skew.sqlite", executor="ray")
    assert "run the same command again to resume" in str(error.value)
    with sqlite3.connect(tmp_path / "skew.sqlite") as db:  # nothing computed under the driver's keys
        assert db.execute("SELECT COUNT(*) FROM features").fetchone()[0] == 0


def test_plan_gives_every_task_of_shared_features_to_one_metric() -> None:
    """Two metrics share ``features_id``; only the second reads the target: the first still owns the target's task,
    released once the generated file's features are ok, so one metric (one actor) holds every task it waits on."""
    base = METRICS.get("audio_rms.fake")

    class NoTarget(base):  # type: ignore[misc, valid-type]
        name = "no_target.test"
        features_id = "shared.test"
        needs = frozenset()

    class WithTarget(base):  # type: ignore[misc, valid-type]
        name = "with_target.test"
        features_id = "shared.test"

    metrics = [NoTarget(), WithTarget()]
    items = [ScoreItem(Path("g1.mp4"), "1" * 64, Path("t.mp4"), "9" * 64),
             ScoreItem(Path("g2.mp4"), "2" * 64, Path("t.mp4"), "9" * 64)]
    plan = FeaturePlan(metrics, items, lambda key: None)
    assert {task.metric_index for task in plan.tasks.values()} == {0} and plan.total([0, 1]) == 3
    due = plan.due(0)
    assert [task.path.name for task in due] == ["g1.mp4", "g2.mp4"] and not plan.due(1)
    assert plan.resolve(due.popleft().key, ok=False) == []  # g1 failed: the target still waits on g2
    released = plan.resolve(due.popleft().key, ok=True)
    assert [task.path.name for task in released] == ["t.mp4"] and list(plan.due(0)) == released
    assert plan.skipped([0, 1]) == 0

    cached = {metrics[0].cache_key("2" * 64): "failed", metrics[0].cache_key("1" * 64): "ok"}
    plan = FeaturePlan(metrics, items, cached.get)  # g1 cached ok: the target is due at once; g2 cached failed
    assert [task.path.name for task in plan.due(0)] == ["t.mp4"] and plan.cache_hits == 2
