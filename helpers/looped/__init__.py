"""Seed 002 (notebook 05): looped transformers learning linear regression (and other tasks) in context.

  model     the looped and the standard transformer over prompt tokens
  tasks     in-context tasks, curricula and their baselines (least squares, averaging, k-NN, ...)
  training  the training loop with curricula and the evaluation of a trained model
  config    typed config and PROFILES, each arm's model and training, shortened runs, the other tasks' settings
  plan      FLOPs per prediction and per step, the GPU planner `full_plan` (torch)
  study     the jobs, the sections (baselines, headline, options, tasks), their sweeps, the regime search (torch)
  verdicts  the gate, escape rates, Welch and TOST, ratios, loop drift, options, tasks, regime table (torch-free)
  report    the figures, the conclusion and `report(records)`, re-exporting what notebook 05 reads (torch-free)
"""
