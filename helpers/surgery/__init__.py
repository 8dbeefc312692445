"""Seed 000 (notebooks 01-03): low-rank surgery on Pythia trained from scratch, 26 experiments.

  ops          the surgery ops on GPT-NeoX and their validation (torch only where a model is changed)
  experiments  the 26 experiments as data and their stand-ins at smaller scale (torch-free)
  study        typed config and PROFILES, the runs, the regime search, the GPU planner `full_plan` (torch)
  report       per-run rows, the all-26 summary, the notes' claims re-tested, `report(records)` (torch-free)
"""
