"""Feature computation in this process, metric-major: one metric's model at a time.

:class:`LocalFeatures` runs the plan's due tasks of the metrics it is given, one metric after the other, with the
same unit as the local loop (:func:`~idlora_bench.executors.units.extract_features`); the runner calls it once per
metric and releases the metric's model in between (``--one-metric-at-a-time``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from idlora_bench.data.media import DecodedMedia
from idlora_bench.executors.plan import FeaturePlan, FeatureTask
from idlora_bench.executors.units import FeatureSink, ProgressFactory, extract_features
from idlora_bench.metrics.base import Metric


@dataclass
class LocalFeatures:
    """Computes features in this process. ``load_media(path, sha256)``: the decoder (the run's decoded-file LRU)."""

    load_media: Callable[[Path, str], DecodedMedia]

    def compute(self, plan: FeaturePlan, indices: list[int], metrics: list[Metric], sink: FeatureSink,
                progress: ProgressFactory) -> dict[str, int]:
        """Run every task of ``metrics[i]`` for ``i`` in ``indices`` (metric by metric), writing each outcome
        through ``sink`` as it comes. Returns extra counts (none here: the runner measures GPU memory itself)."""
        label = "features " + ", ".join(metrics[i].name for i in indices)
        for _ in progress(self._events(plan, indices, metrics, sink), label, plan.total(indices)):
            pass
        return {}

    def _events(self, plan: FeaturePlan, indices: list[int], metrics: list[Metric],
                sink: FeatureSink) -> Iterator[FeatureTask | None]:
        for index in indices:
            metric = metrics[index]
            due = plan.due(index)
            while due:
                task = due.popleft()
                outcome = extract_features(metric, lambda task=task: self.load_media(task.path, task.sha256))
                sink.store(metric, task.key, task.path, task.sha256, outcome)
                plan.resolve(task.key, outcome.status == "ok")
                yield task
        for _ in range(plan.skipped(indices)):  # targets whose generated files all failed: not needed
            yield None
