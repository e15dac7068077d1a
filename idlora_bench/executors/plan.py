"""The features a run still needs: what the local scoring loop would compute, listed up front.

For each metric and each scored output, in the local loop's order:

- the generated file's features, when missing from the cache: due now;
- when the metric uses the target and the target file exists: the target's features, when missing, are due once
  the generated file's features for that metric are ok (the local loop skips the target when they are not, and
  so does the plan: a task whose every prerequisite failed is never run).

Tasks are keyed by cache key, so a file is extracted once however many pairs share it, and metrics that share
``features_id`` (one cache entry) extract it once: the first such metric in profile order owns every task of that
``features_id`` (so a task and the tasks it releases always belong to one metric, and one actor).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from idlora_bench.metrics.base import Metric


@dataclass(frozen=True)
class ScoreItem:
    """One output the rows will score: its file and hash, and its target's (``target_sha256`` None: no target
    file). Built by the runner for outputs that exist and pass the duration check."""

    generated_path: Path
    generated_sha256: str
    target_path: Path
    target_sha256: str | None


@dataclass
class FeatureTask:
    """Extract the features of ``path`` (sha256 ``sha256``) with ``metrics[metric_index]``, stored under ``key``.

    ``waiting_on``: None once the task is due; otherwise the cache keys of generated files whose features must
    come out ok first (any one of them releases it).
    """

    key: str
    metric_index: int
    path: Path
    sha256: str
    waiting_on: set[str] | None = field(default=None)


CacheStatus = Callable[[str], str | None]
"""Cache key -> ``"ok"``, ``"failed"`` or None (not in the cache)."""


class FeaturePlan:
    """Missing features per metric index, released in dependency order as outcomes arrive.

    Executors pop due tasks from :meth:`due` and report each outcome with :meth:`resolve`, which may make more tasks
    of the same metric due. ``cache_hits``: distinct features already in the cache when the plan was made.
    """

    def __init__(self, metrics: list[Metric], items: Iterable[ScoreItem], cached: CacheStatus) -> None:
        self.tasks: dict[str, FeatureTask] = {}
        self._due: dict[int, deque[FeatureTask]] = defaultdict(deque)
        self._dependents: dict[str, list[str]] = defaultdict(list)
        self._order: list[str] = []
        states: dict[str, str | None] = {}

        def state(key: str) -> str | None:
            if key not in states:
                states[key] = cached(key)
            return states[key]

        items = list(items)
        owners: dict[str, int] = {}  # features identity -> the first metric with it: it extracts all of them
        for index, metric in enumerate(metrics):
            owner = owners.setdefault(metric.features_id or metric.name, index)
            for item in items:
                generated_key = metric.cache_key(item.generated_sha256)
                generated = state(generated_key)
                if generated is None:
                    self._add(generated_key, owner, item.generated_path, item.generated_sha256, after=None)
                if not metric.uses_target or item.target_sha256 is None or generated == "failed":
                    continue
                target_key = metric.cache_key(item.target_sha256)
                if state(target_key) is None:
                    self._add(target_key, owner, item.target_path, item.target_sha256,
                              after=None if generated == "ok" else generated_key)
        self.cache_hits = sum(1 for value in states.values() if value is not None)
        for key in self._order:
            task = self.tasks[key]
            if task.waiting_on is None:
                self._due[task.metric_index].append(task)

    def _add(self, key: str, index: int, path: Path, sha256: str, after: str | None) -> None:
        task = self.tasks.get(key)
        if task is None:
            task = FeatureTask(key, index, path, sha256, waiting_on=None if after is None else set())
            self.tasks[key] = task
            self._order.append(key)
        if after is None:
            task.waiting_on = None
        elif task.waiting_on is not None:
            task.waiting_on.add(after)
            self._dependents[after].append(key)

    def due(self, index: int) -> deque[FeatureTask]:
        """The due tasks of metric ``index`` (executors pop from the left)."""
        return self._due[index]

    def resolve(self, key: str, ok: bool) -> list[FeatureTask]:
        """Report the outcome of task ``key``; returns the tasks this made due (also appended to :meth:`due`)."""
        released = []
        for dependent in self._dependents.pop(key, []):
            task = self.tasks[dependent]
            if task.waiting_on is None:
                continue
            if ok:
                task.waiting_on = None
                self._due[task.metric_index].append(task)
                released.append(task)
            else:
                task.waiting_on.discard(key)
        return released

    def total(self, indices: Iterable[int]) -> int:
        """How many tasks metrics ``indices`` own (run or, once their prerequisites failed, skipped)."""
        chosen = set(indices)
        return sum(1 for task in self.tasks.values() if task.metric_index in chosen)

    def skipped(self, indices: Iterable[int]) -> int:
        """Tasks of metrics ``indices`` never released (call once their due queues are drained)."""
        chosen = set(indices)
        return sum(1 for task in self.tasks.values() if task.metric_index in chosen and task.waiting_on is not None)
