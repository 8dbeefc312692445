"""helpers: the tested library behind the notebooks.

Foundation
  paths        where the cache and the results live (LAB_CACHE, LAB_RESULTS)
  assets       offline assets: Debian text corpora, SmolLM2-135M-Instruct, BPE tokenizers (`python -m helpers assets`)
  data         corpora / tokenizers / pretrained models behind one API, LM blocks, corpus statistics, WordNet chats
  profiles     tiny / local / full / auto and `resolve()`
  results      one JSON record per run, `save_run()` / `save_result()` and `load_runs()`
  train        the training core for every causal-LM family (transformers Trainer)
  models       model builders (GPT-NeoX from a config), parameter counts
  evaluate     token-weighted LM loss / perplexity, paired bootstrap of a loss difference
  parallel     small models trained side by side in single-threaded processes
  notebooks    executing notebooks with papermill;  analysis, plots: for the notebooks and Analysis.ipynb
  baselines    notebook 00
Families
  lowrank, surgery, pythia            seed 000: LowRankLinear, declarative surgery, the 26 experiments (01-03)
  compress, compression_study         seed 001: calibration, svd / whiten / scaled factorizations, plans (04)
  looped, icl, looped_study           seed 002: looped transformer, in-context tasks and baselines (05)
"""
__version__ = "0.1.0"
