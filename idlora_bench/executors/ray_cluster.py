"""The runner's work units on a Ray cluster (``bench run --executor ray [--address auto|HOST:PORT]``).

- Generation: ``generators`` actors each build the method once (one model load per actor, ``num_gpus_per_generator``
  GPUs each) and generate pairs into a scratch folder; they return the mp4's bytes (or the failure reason) and the
  driver writes ``videos/<pair_id>.mp4`` atomically, then its record, as results arrive.
- Scoring: one actor per metric that has work (``num_gpus_per_metric`` GPUs each) loads the metric once; the driver
  sends each file's bytes (one ``ray.put`` per file, shared by every metric) and the actor decodes them, runs
  ``extract`` and returns the :class:`~idlora_bench.executors.units.FeatureOutcome`; the driver commits it to the
  feature cache as it arrives. An actor is stopped as soon as its metric's work is done (its resources go to the
  next one), and reports its peak GPU memory (``gpu_peak_bytes.<metric>`` in the run's counts).

Only the driver writes: the feature cache (SQLite), videos, records and result files, so a cluster needs no shared
database and no shared output folder. What every node needs: the same idlora-bench and ray installed (the actors
check that they build the same method config and metric cache keys as the driver, and refuse otherwise), the model
weights in their model store, and, for generation, the split's media readable at the same absolute paths as on the
driver (methods read the reference and target files by path; a shared filesystem or the same copy at the same path).
Scoring needs no shared file at all: files travel as bytes. A method's own state (``attach_run``, e.g. intermediate
speech under ``runs/<split>/_intermediate``) is written by the worker at the driver's run-folder path on its node.

Workers get the driver's ``IDLORA_BENCH_*`` environment variables (plugins, model store, ...) and those named in
``$IDLORA_BENCH_RAY_ENV`` (comma-separated), through the actors' runtime environment. Plugins are loaded on every
worker (``$IDLORA_BENCH_PLUGINS``): a method or metric registered only in the driver's process cannot run there.

``ray`` is imported here only, inside functions: the rest of the package runs without it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from idlora_bench.core.errors import BenchError, MediaError, RegistryError
from idlora_bench.core.plugins import load_plugins
from idlora_bench.data.media import DecodedMedia, decode
from idlora_bench.data.splits import ResolvedPair, Split
from idlora_bench.executors.plan import FeaturePlan, FeatureTask
from idlora_bench.executors.units import (
    FeatureOutcome,
    FeatureSink,
    GeneratedBytes,
    ProgressFactory,
    extract_features,
    generate_bytes,
    gpu_peak_bytes,
    reset_gpu_peak,
    write_generated,
)
from idlora_bench.methods import Method
from idlora_bench.metrics.base import Metric
from idlora_bench.store.run_files import GenerationRecord

log = logging.getLogger("idlora_bench")

RAY_REQUIREMENT = "ray==2.60.0"
ENV_PREFIX = "IDLORA_BENCH_"
EXTRA_ENV = "IDLORA_BENCH_RAY_ENV"
MAX_IN_FLIGHT = 2
"""Tasks queued per actor: one running, one waiting (its input already shipped), so results stream back."""
PROBE_SHA256 = "0" * 64
RESUME_HINT = "What finished is saved (videos, records, cached features); run the same command again to resume."


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`BenchError` naming the fix (never a silent fall back to local)."""
    try:
        import ray
    except ImportError as exc:
        raise BenchError(
            f"--executor ray needs the ray package, which is not installed here ({exc}). Fix: "
            f".venv/bin/pip install -c constraints.txt {RAY_REQUIREMENT} (on the driver and every node of the "
            "cluster), or run with --executor local. Nothing was generated or scored."
        ) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """How to run on Ray.

    address: None starts a local Ray instance (or joins the one ``$RAY_ADDRESS`` names, Ray's default); ``auto``
        joins the cluster started on this machine with ``ray start``; ``HOST:PORT`` the head node's GCS address;
        ``ray://HOST:10001`` a Ray client. A connection this process already holds (``ray.init`` done) is reused.
    num_gpus_per_generator / num_gpus_per_metric: GPUs Ray reserves for each generation / metric actor (fractions
        share a GPU; 0 reserves none: the actor still sees every GPU of its node, Ray just does not place by them).
    num_cpus_per_actor: CPUs reserved per actor (bounds how many actors run at once on a node).
    generators: how many generation actors (each loads the method's models once).
    """

    address: str | None = None
    num_gpus_per_generator: float = 0.0
    num_gpus_per_metric: float = 0.0
    num_cpus_per_actor: float = 1.0
    generators: int = 1


def worker_env() -> dict[str, str]:
    """Environment variables the actors get: every ``IDLORA_BENCH_*`` and those named in ``$IDLORA_BENCH_RAY_ENV``."""
    names = {name for name in os.environ if name.startswith(ENV_PREFIX)}
    names |= {name.strip() for name in os.environ.get(EXTRA_ENV, "").split(",") if name.strip()}
    return {name: os.environ[name] for name in sorted(names) if name in os.environ}


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, naming the fix, when nothing listens at ``HOST:PORT`` (``ray.init`` would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BenchError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BenchError(
            f"--executor ray --address {address}: no Ray cluster answers there ({exc}). Fix: start the head node "
            f"with `ray start --head --port={port}` on {host} (then `ray start --address={address}` on each other "
            "node), or pass the address `ray status` prints on the head node, or leave --address out to start a "
            "local Ray instance. Nothing was generated or scored."
        ) from None


class _GeneratorWorker:
    """Actor body: builds the method once (plugins loaded first) and generates pairs into a scratch folder."""

    def __init__(self, method_name: str, options: dict[str, Any], config_sha256: str, split: Split, run_dir: str,
                 seed: int) -> None:
        from idlora_bench.methods import build_method

        load_plugins()
        try:
            self.method = build_method(method_name, **options)
        except RegistryError as exc:
            raise BenchError(f"{exc} (on a Ray worker: register methods through an entry point or a plugin in "
                             "$IDLORA_BENCH_PLUGINS, which the workers load)") from None
        if self.method.config_sha256() != config_sha256:
            raise BenchError(f"method {method_name!r} has another config on this Ray worker than on the driver: "
                             "install the same idlora-bench version on every node")
        self.method.attach_run(Path(run_dir))
        self.method.prepare(split)
        self.seed = seed
        self.scratch = Path(tempfile.mkdtemp(prefix="idlora-bench-generate-"))

    def generate(self, item: ResolvedPair, final_path: str) -> GeneratedBytes:
        return generate_bytes(self.method, item, self.seed, self.scratch, Path(final_path))


class _MetricWorker:
    """Actor body: loads one metric once; extracts features from files sent as bytes."""

    def __init__(self, metric_name: str, device: str, cache_key_probe: str) -> None:
        from idlora_bench.metrics import METRICS

        load_plugins()
        try:
            self.metric: Metric = METRICS.get(metric_name)(device=device)
        except RegistryError as exc:
            raise BenchError(f"{exc} (on a Ray worker: register metrics through a plugin in $IDLORA_BENCH_PLUGINS, "
                             "which the workers load)") from None
        if self.metric.cache_key(PROBE_SHA256) != cache_key_probe:
            raise BenchError(f"metric {metric_name!r} has another version, parameters or weights on this Ray worker "
                             "than on the driver: install the same idlora-bench and weights on every node")
        reset_gpu_peak(device)
        self.metric.load()
        self.scratch = Path(tempfile.mkdtemp(prefix="idlora-bench-score-"))

    def extract(self, data: bytes, path: str, sha256: str) -> FeatureOutcome:
        """Features of the file ``path`` (on the driver) whose bytes are ``data``: written to scratch under the same
        name, decoded, and seen by the metric (and in every message) as ``path``."""
        original = Path(path)
        folder = self.scratch / sha256
        folder.mkdir(exist_ok=True)
        local = folder / original.name
        local.write_bytes(data)
        decoded = 0

        def load() -> DecodedMedia:
            nonlocal decoded
            try:
                media = decode(local, sha256=sha256)
            except MediaError as exc:
                raise MediaError(original, exc.problem.replace(str(local), str(original)), exc.code) from None
            decoded = 1
            return dataclasses.replace(media, path=original)

        try:
            outcome = extract_features(self.metric, load)
        finally:
            local.unlink(missing_ok=True)
            folder.rmdir()
        return dataclasses.replace(outcome, decoded=decoded)

    def peak_gpu_bytes(self) -> int | None:
        return gpu_peak_bytes(self.metric.device)


class RaySession:
    """One run's use of a Ray cluster (a context manager): connects on enter, disconnects on exit (and stops the
    local instance it started); a connection this process already holds is reused and left open."""

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self._ray: Any = None
        self._started = False

    def __enter__(self) -> RaySession:
        ray = import_ray()
        self._ray = ray
        if ray.is_initialized():
            log.info("executor ray: using this process's Ray connection")
            return self
        address = self.options.address
        if address not in (None, "auto", "local") and not address.startswith("ray://"):
            check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=True)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            where = f"--address {address}" if address else "a local Ray instance"
            auth = ("" if address in (None, "auto", "local") else
                    " A cluster started by `ray start` checks a token (Ray's default): with an explicit address set "
                    "RAY_AUTH_MODE=token and the head's token (`ray get-auth-token` there) in $RAY_AUTH_TOKEN or "
                    "~/.ray/auth_token.")
            raise BenchError(
                f"--executor ray: cannot connect to {where} ({exc}). Fix: start a cluster with `ray start --head` "
                "(and `ray start --address=HEAD:6379` on the other nodes), then --address auto on the head node or "
                f"--address HEAD:6379 elsewhere; or leave --address out.{auth} Nothing was generated or scored."
            ) from None
        self._started = True
        log.info("executor ray: %s", ray.cluster_resources())
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False

    # ------------------------------------------------------------------ plumbing
    def _actor(self, body: type, num_gpus: float) -> Any:
        env = worker_env()
        return self._ray.remote(body).options(
            num_cpus=self.options.num_cpus_per_actor, num_gpus=num_gpus, max_restarts=1, max_task_retries=1,
            runtime_env={"env_vars": env} if env else None,
        )

    def _check_fits(self, num_gpus: float, what: str) -> None:
        """Refuse an actor no node could ever hold (Ray would wait for it forever)."""
        resources = self._ray.cluster_resources()
        for name, wanted in (("CPU", self.options.num_cpus_per_actor), ("GPU", num_gpus)):
            have = float(resources.get(name, 0.0))
            if wanted > have:
                raise BenchError(
                    f"executor ray: {what} asks for {wanted:g} {name} but the whole Ray cluster has {have:g}. Fix: "
                    f"ask for less (runner.run ray_num_gpus_per_* / ray_num_cpus_per_actor) or add a node with "
                    f"`ray start --address=HEAD:6379 --num-{name.lower()}s=N`. Nothing more was generated or scored."
                )

    def _get(self, ref: Any, what: str) -> Any:
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as exc:
            raise BenchError(f"executor ray: {what} failed on the cluster: {exc}\n{RESUME_HINT}") from exc

    # ------------------------------------------------------------------ generation
    def generate(self, method_name: str, method: Method, method_options: dict[str, Any], split: Split,
                 items: list[ResolvedPair], videos_dir: Path, seed: int) -> Iterator[GenerationRecord]:
        """Generate ``items`` on generation actors; yields each record once the driver has written the output
        (``videos/<pair_id>.mp4`` atomically, then ``videos/<pair_id>.json``)."""
        if not items:
            return
        self._check_fits(self.options.num_gpus_per_generator, "a generation actor")
        ray = self._ray
        split = dataclasses.replace(split, directory=split.directory.absolute(),
                                    media_root=split.media_root.absolute(), pairs_path=split.pairs_path.absolute())
        assert method.run_dir is not None
        body = self._actor(_GeneratorWorker, self.options.num_gpus_per_generator)
        actors = [body.remote(method_name, dict(method_options), method.config_sha256(), split,
                              str(method.run_dir.absolute()), seed)
                  for _ in range(max(1, min(self.options.generators, len(items))))]
        queue = deque(items)
        in_flight: dict[Any, tuple[int, ResolvedPair]] = {}
        busy: Counter[int] = Counter()

        def submit(worker: int) -> None:
            while queue and busy[worker] < MAX_IN_FLIGHT:
                item = queue.popleft()
                remote_item = ResolvedPair(item.pair, item.split, item.reference_path.absolute(),
                                           item.target_path.absolute())
                ref = actors[worker].generate.remote(remote_item, str(videos_dir / f"{item.pair_id}.mp4"))
                in_flight[ref] = (worker, item)
                busy[worker] += 1

        try:
            for worker in range(len(actors)):
                submit(worker)
            while in_flight:
                [ref], _ = ray.wait(list(in_flight), num_returns=1)
                worker, item = in_flight.pop(ref)
                busy[worker] -= 1
                result = self._get(ref, f"generating {item.pair_id} with {method_name}")
                record = write_generated(method, videos_dir, seed, result)
                submit(worker)
                yield record
        finally:
            for actor in actors:
                ray.kill(actor)

    # ------------------------------------------------------------------ features
    def compute(self, plan: FeaturePlan, indices: list[int], metrics: list[Metric], sink: FeatureSink,
                progress: ProgressFactory) -> dict[str, int]:
        """Run the plan's tasks of ``metrics[i]`` (``i`` in ``indices``) on one actor per metric, all at once;
        every outcome goes through ``sink`` (the cache) as it arrives. Returns ``gpu_peak_bytes.<metric>`` counts."""
        label = "features " + ", ".join(metrics[i].name for i in indices) + " (ray)"
        working = [index for index in indices if plan.due(index)]
        peaks: dict[str, int] = {}
        actors: dict[int, Any] = {}
        if working:
            self._check_fits(self.options.num_gpus_per_metric, "a metric actor")
            body = self._actor(_MetricWorker, self.options.num_gpus_per_metric)
            actors = {index: body.remote(metrics[index].name, metrics[index].device,
                                         metrics[index].cache_key(PROBE_SHA256)) for index in working}
        try:
            events = self._feature_events(plan, indices, actors, metrics, sink, peaks)
            for _ in progress(events, label, plan.total(indices)):
                pass
        finally:
            for actor in actors.values():
                self._ray.kill(actor)
        return peaks

    def _feature_events(self, plan: FeaturePlan, indices: list[int], actors: dict[int, Any], metrics: list[Metric],
                        sink: FeatureSink, peaks: dict[str, int]) -> Iterator[FeatureTask | None]:
        ray = self._ray
        files: dict[str, Any] = {}  # sha256 -> object ref of the file's bytes, put once, shared by every metric
        in_flight: dict[Any, tuple[int, FeatureTask]] = {}
        busy: Counter[int] = Counter()

        def submit(index: int) -> None:
            due = plan.due(index)
            while due and busy[index] < MAX_IN_FLIGHT:
                task = due.popleft()
                if task.sha256 not in files:
                    files[task.sha256] = ray.put(task.path.read_bytes())
                ref = actors[index].extract.remote(files[task.sha256], str(task.path), task.sha256)
                in_flight[ref] = (index, task)
                busy[index] += 1

        for index in actors:
            submit(index)
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            index, task = in_flight.pop(ref)
            busy[index] -= 1
            metric = metrics[index]
            outcome: FeatureOutcome = self._get(ref, f"metric {metric.name} on {task.path}")
            sink.store(metric, task.key, task.path, task.sha256, outcome)
            plan.resolve(task.key, outcome.status == "ok")
            submit(index)
            if busy[index] == 0:  # nothing due and nothing running: this metric is done, free its actor
                peak = self._get(actors[index].peak_gpu_bytes.remote(), f"metric {metric.name}")
                if peak is not None:
                    peaks[f"gpu_peak_bytes.{metric.name}"] = peak
                    log.info("metric %s: peak GPU memory %.0f MiB (Ray actor)", metric.name, peak / 2**20)
                ray.kill(actors.pop(index))
            yield task
        for _ in range(plan.skipped(indices)):
            yield None
