"""helpers: the tested library behind the notebooks.

Reading results (torch-free: Analysis.ipynb, the README generator and the notebook runner import nothing heavier)
  paths        where the cache, the results and the checkpoints live (LAB_CACHE, LAB_RESULTS, LAB_CHECKPOINTS)
  results      one JSON record per run (metrics, tables, curves, params, provenance), run ids, loading, load_or_run
  provenance   git state (and a hash of an uncommitted diff), versions, device, wall time and peak memory
  stats        comparisons over seeds (Welch + Holm, n and df), the paired bootstrap over held-out rows
  analysis     a family's records of one profile, records -> DataFrame (`frame`), the `Report` every family fills
  plots        the figures every family draws
  families     THE registry: notebook -> family package (study, report), README block; reports, plans, a
               run's start (resolve)
  readme       the generated blocks of README.md and docs/results.md (`python -m helpers readme [--check]`)
  notebooks    executing notebooks with papermill (`make run`)
  profiles     tiny / local / gpu-small / full / auto, overrides, `profiles.settings` (the one public resolve is
               families.resolve: it decides auto and adds the plan)
  planning     a notebook's plan in a GPU profile (memory + time from the GPU benchmark), THE card table (CARDS,
               card_of; benchmarks/bench_gpu.py reads it), the plans' tables
  precision    THE precision rule (precision_for: fp32 / bf16 / fp16 mixed precision) and what follows from it
               (Trainer flags, model dtype, inference autocast); torch imported only where a device is probed
  memory       memory plans of one training or inference step, from parameter counts on the meta device
  hub          Hugging Face hub access: reachability, offline switches, one error for "no network", HUB_IDS
Running (torch)
  assets       offline assets: Debian packages, SmolLM2-135M-Instruct, BPE tokenizers (`python -m helpers assets`)
  corpora      the assets' corpora step: extracted packages -> clean documents -> fixed by-document splits
  data         corpora, tokenizers, pretrained models behind one API; LM blocks; chat templates and chat encoding
  models       every model shape and config builder, and the one parameter counter (`count_params`)
  train        the training core for every causal-LM family (transformers Trainer), its Meter
  pretrain     the from-scratch LM core: one data path and cache, unigram/bigram references, `pretrain(cfg)`
  evaluate     token-weighted LM loss / perplexity (per row for paired comparisons)
  sweep        the sweep runner: points -> one record each, recorded points loaded, points over workers; a
               notebook's sweeps as named objects (Sweep)
  points       one sweep point as one command (python -m helpers point) and the sweeps as W&B sweep files
  tracking     THE W&B logger: log_record(rec) (callers decide whether W&B is on)
  parallel     models trained side by side: single-threaded CPU processes, or workers pinned to GPUs
  layers       layer selections ("after:k", "a-b") and their mapping onto shallower stand-ins
Families: one package each, importing the shared layer above and never another family (tests/test_shape.py). Each
has `study` (its sections in order: typed config and PROFILES, record-keyed sections that return {(variant, seed):
record}, the GPU planner `full_plan`; `__all__` is what its notebook calls) and `report` (tables, figures, conclusion
and report(records), torch-free, shared by the notebook's last cell and Analysis.ipynb); the package docstring lists
its other modules, one job each.
  baselines     notebook 00        data, tokenizers, a pretrained reference, a from-scratch baseline
  surgery       seed 000 (01-03)   ops, experiments (the 26 as data), study, summary -> claims -> report
  compression   seed 001 (04)      calibrate, factorize, whitening, config, data, measure, plan, study, report
  looped        seed 002 (05)      model, tasks, training, config, plan, study, verdicts -> report
  sft           seed 004 (06)      chats, models, trainers, measure, config, jobs, plan, study, report
  pretraining   seed 003 (07)      config, data, runs, plan, study, report (the LM core is the shared `pretrain`)
"""
__version__ = "0.1.0"
