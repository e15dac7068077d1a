"""Executors: who runs the runner's work units, and where.

The runner (:mod:`idlora_bench.runner`) decides *what* must be done (which pairs to generate, which features are
missing from the cache) and writes every file; an executor only computes:

- ``units.py``: the work units every executor shares: extract one metric's features from one file
  (:func:`~idlora_bench.executors.units.extract_features`, an outcome ``ok`` / ``failed`` / ``error``), generate
  one pair into bytes, the generation-record checks, and releasing a metric's model;
- ``plan.py``: the features of a run that are missing from the cache, per metric, deduplicated by cache key
  (metrics that share ``features_id`` compute a file once); a target's features are due only once a generated
  file's features for the same metric came out ok (as in the local loop);
- ``local.py``: metric-major computation in this process (one metric's model loaded at a time);
- ``ray_cluster.py``: the same units on a Ray cluster (generation actors hold the method, one actor per metric holds
  its model); ``ray`` is imported there only, lazily, so everything else runs without it.
"""
