"""helpers: the tested library behind the notebooks.

Foundation (one job each)
  paths        where the cache and the results live (LAB_CACHE, LAB_RESULTS)
  hub          Hugging Face hub access: reachability, offline switches, one error for "no network"
  assets       offline assets: Debian text corpora, SmolLM2-135M-Instruct, BPE tokenizers (`python -m helpers assets`)
  data         corpora / tokenizers / pretrained models behind one API, LM blocks, corpus statistics, WordNet chats
  models       every model config (small NeoX, Pythia, Mistral, the looped model's) and the one parameter counter
  profiles     tiny / local / full / auto and `resolve()`
  provenance   git state (and a hash of an uncommitted diff), versions, device, wall time and peak memory
  results      one JSON record per run (metrics, tables, curves, params, provenance), run ids, loading
  train        the training core for every causal-LM family (transformers Trainer)
  pretrain     the from-scratch pretraining core (a small GPT-NeoX, its unigram and bigram references)
  icl_train    the in-context-learning training loop and its evaluation
  evaluate     token-weighted LM loss / perplexity, paired bootstrap of a loss difference
  parallel     small models trained side by side in single-threaded processes
  sweep        the sweep runner: points -> one record each, recorded points loaded, CPU points over workers
  notebooks    executing notebooks with papermill;  analysis, plots: reports and figures for notebooks and Analysis
  readme       the README's generated results blocks (`python -m helpers readme [--check]`)
Families: <family>_study holds the typed config and PROFILES, sections that take the resolved run and return its
records, table / figure / conclusion functions of records, and a torch-free report(records) for Analysis.ipynb
  data_study                                      notebook 00
  lowrank, surgery          -> surgery_study      seed 000 (01-03)
  compress                  -> compression_study  seed 001 (04)
  looped, icl, icl_train    -> looped_study       seed 002 (05)
  sft (TRL + PEFT)          -> sft_study          seed 004 (06)
  pretrain                  -> pretrain_study     seed 003 (07)
"""
__version__ = "0.1.0"
