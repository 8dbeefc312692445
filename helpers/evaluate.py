"""Token-weighted causal-LM loss: sum of token cross-entropies / number of predicted tokens (not a mean of
per-batch means, which over-weights short batches)."""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def lm_loss(model, blocks, batch_size: int = 8, device: str = "cpu", per_sequence: bool = False) -> dict:
    """Mean next-token loss and perplexity of `model` over rows of input_ids[, labels] (labels -100 are skipped).

    With per_sequence, also returns the summed loss and token count of every row (for bootstrap intervals).
    """
    from .train import lm_collator

    model.eval()
    total, count, seq_sums, seq_counts = 0.0, 0, [], []
    for i in range(0, len(blocks), batch_size):
        batch = lm_collator([blocks[j] for j in range(i, min(i + batch_size, len(blocks)))])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        labels = batch["labels"][:, 1:]
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels, ignore_index=-100,
                                               reduction="none")                      # (B, T-1)
        valid = labels != -100
        s, c = (ce * valid).sum(1), valid.sum(1)
        total += float(s.sum())
        count += int(c.sum())
        seq_sums += s.tolist()
        seq_counts += c.tolist()
    if count == 0:
        raise ValueError("no predicted tokens: every label is -100 or the blocks are empty")
    loss = total / count
    out = {"loss": loss, "ppl": math.exp(min(loss, 50)), "tokens": count}
    if per_sequence:
        out.update(seq_loss_sum=seq_sums, seq_tokens=seq_counts)
    return out


def paired_bootstrap(teacher: dict, student: dict, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Token-weighted loss difference (student - teacher) on the same sequences, with a paired bootstrap interval.

    `teacher` / `student` come from lm_loss(..., per_sequence=True) on identical rows; sequences (not tokens) are
    resampled, so within-sequence correlation is respected."""
    import numpy as np

    t = np.asarray(teacher["seq_loss_sum"])
    s = np.asarray(student["seq_loss_sum"])
    n = np.asarray(teacher["seq_tokens"])
    if not np.array_equal(n, np.asarray(student["seq_tokens"])):
        raise ValueError("teacher and student were evaluated on different sequences")
    diff = (s - t).sum() / n.sum()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(n), size=(n_boot, len(n)))
    boots = (s[idx] - t[idx]).sum(1) / n[idx].sum(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"delta": float(diff), "lo": float(lo), "hi": float(hi), "level": level, "sequences": int(len(n)),
            "tokens": int(n.sum())}
