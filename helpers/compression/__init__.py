"""Seed 001 (notebook 04): low-rank compression of a pretrained Llama/Mistral-family model.

  factorize  calibration statistics and the factorizations (SVD, whitened SVD, fitted factors) of one Linear
  whitening  whiten's centring policies measured over calibration draws
  plan       the notebook's plan on a GPU (memory, host memory, time)
  study      typed config and PROFILES, the sections (sweep, sensitivity, healing) (torch)
  report     tables, figures, the conclusion and `report(records)` (torch-free)
"""
