"""Layer 1 (imports ``core``): what is written to disk and read back: the SQLite feature cache (``cache``) and
the files of a run folder (``run_files``: results, manifests, counts, generation records)."""
