"""Seed 003 (notebook 07): pretraining a small Russian LM from scratch under a fixed budget.

  config   typed config and PROFILES, the grid and schedule declarations, the study's design
  data     the inputs checked before any run, the bigram table's continuation, the validation words of `word_share`
  runs     one sweep point's job (train, evaluate, generate, `log_wandb`), `run_key`, the regime search's point
  plan     the notebook's plan on a GPU (memory, time)
  study    the sections the notebook runs: the grid, reruns, schedules and lr range as sweeps, `sweeps` (torch)
  tables   the generations (and their Fisher test against the bigram table's) and the regime table (torch-free)
  report   the gate, the grid's verdicts, schedules, the conclusion and `report(records)` (torch-free)
"""
