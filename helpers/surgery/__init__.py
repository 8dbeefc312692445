"""Seed 000 (notebooks 01-03): low-rank surgery on Pythia trained from scratch, 26 experiments.

  ops          the surgery ops on GPT-NeoX and their validation (torch only where a model is changed)
  experiments  the 26 experiments as data and their stand-ins at smaller scale (torch-free)
  study        typed config and PROFILES, the runs, the GPU planner `full_plan` (torch)
  regime       the regime search's points (benchmarks/surgery_regime.py; torch)
  summary      per-run rows, the all-26 summary (Dunnett verdicts, retained share), the regime table (torch-free)
  claims       the conclusion, the notes' claims re-tested, docs/results.md's seed-000 block (torch-free)
  report       the figures and `report(records)`, re-exporting what notebooks 01-03 and the registry read (torch-free)
"""
