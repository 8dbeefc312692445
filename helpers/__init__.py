"""helpers: the tested library behind the notebooks.

Modules
  paths      where the cache and the results live (LAB_CACHE, LAB_RESULTS)
  assets     offline assets: Debian text corpora, SmolLM2-135M-Instruct, BPE tokenizers (`python -m helpers assets`)
  data       corpora / tokenizers / pretrained models behind one API, LM blocks, corpus statistics
  profiles   tiny / local / full / auto and `resolve()`
  results    one JSON record per run, `save_run()` and `load_runs()`
  train      the training core for every causal-LM family (transformers Trainer)
  models     model builders (small GPT-NeoX from a config)
  evaluate   token-weighted LM loss / perplexity
  notebooks  executing notebooks with papermill
"""
__version__ = "0.1.0"
