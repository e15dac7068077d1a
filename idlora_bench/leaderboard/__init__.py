"""Leaderboard layer (beside the runner): submission bundles (``bench submit``), their validation and re-scoring
(``bench leaderboard validate|rescore``) and the static leaderboard site (``bench leaderboard build``).

- ``bundle.py``: the bundle layout and manifest (``bundle.json``), archive writing;
- ``archive.py``: safe reading of archives and folders (no links, no ``..``, size limits, checked before extraction);
- ``submit.py``: run folders -> a validated bundle;
- ``validate.py``: every check that costs no metric computation, each problem listed;
- ``rescore.py``: recompute every metric from the videos through the runner and compare per sample;
- ``site.py`` / ``site_pages.py`` and ``site_assets/``: the static site (tables, method pages, plots, downloads).

It imports core, data, store, report, metrics (metric definitions, for version checks) and the runner (re-scoring);
only the CLI imports it.
"""
