"""helpers: the tested library behind the notebooks.

Reading results (torch-free: Analysis.ipynb, the README generator and the notebook runner import nothing heavier)
  paths        where the cache, the results and the checkpoints live (LAB_CACHE, LAB_RESULTS, LAB_CHECKPOINTS)
  results      one JSON record per run (metrics, tables, curves, params, provenance), run ids, loading, load_or_run
  provenance   git state (and a hash of an uncommitted diff), versions, device, wall time and peak memory
  stats        comparisons over seeds (Welch + Holm, n and df), the paired bootstrap over held-out rows
  analysis     a family's records of one profile, records -> DataFrame (`frame`), the `Report` every family fills
  plots        the figures every family draws
  families     THE registry: notebook -> study module, report module, README block; reports, plans, a run's start
  readme       the README's generated results blocks (`python -m helpers readme [--check]`)
  notebooks    executing notebooks with papermill (`make run`)
  profiles     tiny / local / gpu-small / full / auto, overrides, `profiles.resolve` (families.resolve adds the plan)
  planning     a notebook's plan in a GPU profile (memory + time from the GPU benchmark), cards, the plans' tables
  memory       memory plans of one training or inference step, from parameter counts on the meta device
  hub          Hugging Face hub access: reachability, offline switches, one error for "no network", HUB_IDS
Running (torch)
  assets       offline assets: Debian text corpora, SmolLM2-135M-Instruct, BPE tokenizers (`python -m helpers assets`)
  data         corpora, tokenizers, pretrained models behind one API; LM blocks; chat templates and chat encoding
  models       every model shape and config builder, and the one parameter counter (`count_params`)
  train        the training core for every causal-LM family (transformers Trainer), its Meter, the precision policy
  pretrain     the from-scratch LM core: one data path and cache, unigram/bigram references, `pretrain(cfg)`
  evaluate     token-weighted LM loss / perplexity (per row for paired comparisons)
  sweep        the sweep runner: points -> one record each, recorded points loaded, points over workers; a
               notebook's sweeps as named objects (Sweep)
  points       one sweep point as one command (python -m helpers point) and the sweeps as W&B sweep files
  parallel     models trained side by side: single-threaded CPU processes, or workers pinned to GPUs
  layers       layer selections ("after:k", "a-b") and their mapping onto shallower stand-ins
Families: <family>_study = typed config and PROFILES, jobs, record-keyed sections that return {(variant, seed):
record}, and the GPU profiles' planner `full_plan`; <family>_report = tables, figures, conclusion and report(records),
torch-free, shared by the notebook's last cell and Analysis.ipynb.
  data_study / data_report                                        notebook 00
  surgery, lowrank -> surgery_experiments, surgery_study / _report  seed 000 (01-03)
  compress, compression_whitening, compression_plan -> compression_study / _report  seed 001 (04)
  looped, icl, icl_train -> looped_study / looped_report          seed 002 (05)
  sft (TRL + PEFT), sft_data -> sft_study / sft_report           seed 004 (06)
  pretrain         -> pretrain_study / pretrain_report            seed 003 (07)
"""
__version__ = "0.1.0"
