"""Seed 003 (notebook 07): pretraining a small Russian LM from scratch under a fixed budget.

  study    typed config and PROFILES, the grid, schedules, lr range and reruns as sweeps, `full_plan` (torch)
  report   the gate, the grid's verdicts, schedules, generations, the conclusion and `report(records)` (torch-free)
"""
