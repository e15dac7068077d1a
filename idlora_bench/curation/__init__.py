"""Split curation: build a split from raw videos and a spec (``build``), import the authors' evaluation layout
(``importer``), check a split's hygiene (``check``) and derive probe splits (``probes``).

A layer above the metrics (the hygiene report scores identity consistency with the offline metrics); the runner and
the report never import it. The CLI exposes it as ``bench splits build|import|check|probe``.
"""
