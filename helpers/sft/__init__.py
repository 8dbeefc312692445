"""Seed file 004 (notebook 06): LoRA + SFT + DPO of a chat model and the comparison of its checkpoints.

  chats     the rows of each part (WordNet definition chats, UltraChat / UltraFeedback) and their encodings
  trainers  the SFT and DPO trainers (TRL + PEFT) and the measurements of a checkpoint
  study     typed config and PROFILES, the sections (SFT, lessons, pairs, DPO) (torch)
  report    tables, McNemar over held-out pairs, the conclusion and `report(records)` (torch-free)
"""
