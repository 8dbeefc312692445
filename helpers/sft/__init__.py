"""Seed file 004 (notebook 06): LoRA + SFT + DPO of a chat model and the comparison of its checkpoints.

  chats     the rows of each part (WordNet definition chats and pairs, UltraChat / UltraFeedback, on-policy pairs),
            their encodings and the data key
  models    the chat model a profile tunes, and its tokenizer's name
  trainers  the SFT and DPO trainer set-up (TRL configs, LoRA settings) and the merge of an adapter (torch, TRL, PEFT)
  measure   the measurements of a checkpoint: answer loss, pair log-probs and preference, generation, F1, speeds
  config    typed config and PROFILES, each SFT variant's settings, the record keys
  jobs      one SFT run and one DPO run (what a worker runs), and where adapters are kept
  plan      the full profile's GPU plan (full_plan)
  study     the sections the notebook calls (data, SFT, lessons, pairs, DPO search and runs, comparison)
  verdicts  DPO against the SFT model: McNemar, log p(chosen)'s change, answer loss and F1, the four SUCCESS criteria
            (torch-free)
  report    tables, the lessons (Dunnett), the conclusion and `report(records)` (torch-free)
"""
