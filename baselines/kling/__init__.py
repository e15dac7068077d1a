"""Kling 2.6 Pro through Kling's HTTP API (method ``kling-2.6-pro``): the client (``client``), the prompt adaptation
(``prompts``), the run's task store (``jobs``) and the method (``method``). See ``baselines/README.md``."""
