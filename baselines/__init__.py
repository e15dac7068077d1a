"""Baseline systems of the paper as method adapters: cascades ``<tts>+<video>`` composed from parts
(``baselines.parts``, ``baselines.cascade``), the commercial unified system Kling 2.6 Pro (``baselines.kling``) and
``precomputed`` (outputs produced elsewhere, with a manifest). See ``baselines/README.md``."""
