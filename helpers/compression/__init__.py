"""Seed 001 (notebook 04): low-rank compression of a pretrained Llama/Mistral-family model.

  calibrate  the input statistics of a model's Linears (hooks, float64 moments) and one Linear's captured inputs
  factorize  the factorizations (SVD, whitened SVD, scaled, fitted factors) of one Linear, plans and model-wide
             compression; the centring policies and their one default
  whitening  whiten's centring policies measured over calibration draws (section f)
  config     typed config and PROFILES
  data       the teacher and its calibration and held-out text
  measure    the measurements of sections a-e and the held-out losses against the teacher
  plan       the notebook's plan on a GPU (memory, host memory, time)
  study      the sections the notebook runs, recorded (torch)
  report     tables, figures, the conclusion and `report(records)` (torch-free)
"""
