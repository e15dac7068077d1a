"""Layer 2 (imports ``core`` and ``store`` only): everything computed from result files - per-method summaries
(``stats``), paired comparisons (``paired_stats``), tables (``tables``) and their renderers (``render``), plots.

It never imports the runner, the metrics or the methods, so ``bench table`` runs on a core-only install
(no torch, no cv2, no PyAV).
"""
