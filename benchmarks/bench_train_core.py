"""Throughput of the training core (transformers Trainer + our callbacks) vs a minimal hand-written PyTorch loop.

Same model (the local profile's GPT-NeoX of notebook 00), same data, same batch, same AdamW, same number of steps;
the two are interleaved (hand, core, hand, core, ...) so that machine noise hits both alike, and the ratio of the
medians is printed (target >= 0.85). Peak memory of each is printed too. The record goes to
results/benchmarks/ so Analysis.ipynb lists it.

    python benchmarks/bench_train_core.py [--steps 60] [--repeats 3] [--profile local]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from helpers.baselines import study as B
from helpers.models import from_config, neox_config
from helpers.pretrain import lm_data
from helpers.profiles import settings
from helpers.provenance import Tracker
from helpers.results import save_run
from helpers.train import TrainConfig, lm_collator, train_causal_lm


def hand_loop(model, blocks, cfg: TrainConfig, device: str) -> tuple[float, float]:
    """nanoGPT-style loop: sequential batches, AdamW, grad clipping, constant lr. Returns (tokens/s, peak MB).

    Timed end to end like the Trainer's train_runtime: optimizer creation and the first (slow) steps included."""
    model.train()
    bs, seq = cfg.batch_size, len(blocks[0]["input_ids"])
    rows = [blocks[i] for i in range(cfg.max_steps * bs)]
    with Tracker(device) as tr:
        t0 = time.perf_counter()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                weight_decay=cfg.weight_decay)
        for step in range(cfg.max_steps):
            batch = {k: v.to(device) for k, v in lm_collator(rows[step * bs:(step + 1) * bs]).items()}
            loss = model(**batch).loss                                   # (B, T) -> scalar mean CE
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
        float(loss)                                                      # sync before stopping the clock
        dt = time.perf_counter() - t0
    return cfg.max_steps * bs * seq / dt, tr.peak_mb


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", default="local")
    args = ap.parse_args()

    run = settings("bench_train_core", B.PROFILES, args.profile, quiet=True)
    cfg = run.cfg.lm
    tok, train, _, _ = lm_data(cfg)
    tcfg = TrainConfig(max_steps=args.steps, batch_size=cfg.train.batch_size, lr=cfg.train.lr, scheduler="constant",
                       log_every=10, progress=False, adam_beta2=cfg.train.adam_beta2)
    make = lambda: from_config(neox_config(cfg.size, len(tok)), run.device)  # noqa: E731
    hand, core, hand_mem, core_mem = [], [], [], []
    for r in range(args.repeats):
        torch.manual_seed(r)
        tps, mem = hand_loop(make(), train, tcfg, run.device)
        hand.append(tps)
        hand_mem.append(mem)
        torch.manual_seed(r)
        res = train_causal_lm(make(), train, None, tcfg, device=run.device, seed=r)
        core.append(res["metrics"]["tokens_per_s"])
        core_mem.append(res["provenance"]["peak_mem_mb"])
        print(f"repeat {r}: hand {tps:,.0f} tok/s, core {core[-1]:,.0f} tok/s")
    ratio = statistics.median(core) / statistics.median(hand)
    print(f"\nmodel GPT-NeoX {cfg.size.hidden}x{cfg.size.layers}, batch {tcfg.batch_size} x {cfg.block} tokens, "
          f"{args.steps} steps x {args.repeats} repeats on {run.device}")
    print(f"hand-written loop : {statistics.median(hand):10,.0f} tokens/s   peak {max(hand_mem):7.0f} MB")
    print(f"training core     : {statistics.median(core):10,.0f} tokens/s   peak {max(core_mem):7.0f} MB")
    print(f"ratio core / hand : {ratio:.3f}   (target >= 0.85)")
    path = save_run("benchmarks", "bench_train_core", "trainer-vs-hand-loop",
                    {"profile": run.profile, "steps": args.steps, "repeats": args.repeats,
                     "model": f"neox-{cfg.size.hidden}x{cfg.size.layers}", "batch": tcfg.batch_size,
                     "block": cfg.block},
                    {"ratio": ratio, "hand_tokens_per_s": statistics.median(hand),
                     "core_tokens_per_s": statistics.median(core), "hand_peak_mb": max(hand_mem),
                     "core_peak_mb": max(core_mem)},
                    profile=run.profile, seed=0, curves={"hand": dict(enumerate(hand)), "core": dict(enumerate(core))},
                    provenance={"tokens_per_s": statistics.median(core)}, device=run.device)
    print(f"record: {path}")


if __name__ == "__main__":
    main()
