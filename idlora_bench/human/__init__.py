"""Human studies (the paper's A/B preference and MOS protocols): build a study from run folders, serve its static
pages, store every answer in SQLite, export CSVs for crowd platforms and analyse the answers.

- :mod:`~idlora_bench.human.model`: the study file (``study.json``): items, slots, controls, seeds.
- :mod:`~idlora_bench.human.sources`: which pairs each run can show (failures left out, counted); the media folder.
- :mod:`~idlora_bench.human.study`: build A/B and MOS studies (cyclic Latin square, hidden controls, practice).
- :mod:`~idlora_bench.human.pages`: the static site (HTML/JS/CSS from ``assets/``, media, per-slot card lists).
- :mod:`~idlora_bench.human.responses`: the SQLite answer store (append-only).
- :mod:`~idlora_bench.human.server`: ``bench human serve`` (stdlib ``http.server``).
- :mod:`~idlora_bench.human.export`: responses and assignment lists as CSV.
- :mod:`~idlora_bench.human.analyze`: control exclusion, binomial tests, MOS statistics, figures and tables.
"""
