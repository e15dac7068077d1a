"""Model code used by metrics (network definitions, checkpoint key mapping, pre/post-processing).

One module per model family; the metric files in ``idlora_bench/metrics/`` use them.
"""
