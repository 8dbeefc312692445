"""Notebook 00: the data, the tokenizers, a pretrained reference and a from-scratch baseline.

  study    typed config and PROFILES, the record-keyed sections, the GPU planner `full_plan` (torch)
  report   tables, figures, the conclusion and `report(records)` (torch-free)
"""
