"""Seed 002 (notebook 05): looped transformers learning linear regression (and other tasks) in context.

  model     the looped and the standard transformer over prompt tokens
  tasks     in-context tasks, curricula and their baselines (least squares, averaging, k-NN, ...)
  training  the training loop with curricula and the evaluation of a trained model
  study     typed config and PROFILES, the sweeps (headline, options, tasks, regime), `full_plan` (torch)
  report    the gate, escape rates, parity tests, drift, the conclusion and `report(records)` (torch-free)
"""
