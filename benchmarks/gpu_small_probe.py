"""A CPU probe of notebook 05's gpu-small profile (no GPU was available to choose it): does each arm leave the
predict-zero plateau in the first steps of its curriculum? Each variant trains one arm on one tuning seed (100, and
101-102 in rounds 5-6; never the notebook's, never reported), for its first steps or (rounds 4-7) its profile's whole
run (2,400 steps; 3,200 in round 7), on one thread, and is scored on validation prompts (cfg.val_seed) at the point
the curriculum has reached, against averaging on the same prompts at k = 2d. One record per round in
results/benchmarks/.

It answers a narrower question than a regime search (one or two seeds per variant, no options or tasks), on the CPU
because that is what this machine has: a plateau here says those steps have not learned, not that a longer run
cannot.

    python benchmarks/gpu_small_probe.py            # round 1: 3 variants, two side by side (~8 minutes on 2 cores)
    python benchmarks/gpu_small_probe.py --round 2  # round 2: the local regime's batch 128 (~35 minutes on 2 cores)
    python benchmarks/gpu_small_probe.py --round 3  # round 3: round 2's recipe for the standard arm; at batch 64
    python benchmarks/gpu_small_probe.py --round 4  # round 4: the chosen profile's standard arm (and at lr 3e-4)
    python benchmarks/gpu_small_probe.py --round 5  # round 5: the profile at lr 3e-4: looped arm, 2 seeds
    python benchmarks/gpu_small_probe.py --round 6  # round 6: the looped arm at lr 1e-3 on that profile, 2 seeds
    python benchmarks/gpu_small_probe.py --round 7  # round 7: d = 10 at batch 128, each arm at its lr (~75 minutes)

Round 1 left every variant on the plateau, the easier curriculum (from d = 2) too, at batch 32. Round 2 carries over
what the local profile learned with (batch 128, lr 1e-3 with warmup, d = 2 first), at the profile's width and loops,
with the curriculum held 400 steps per dimension, in the profile's token format and in the local one (extra_dim):
both left the plateau (error at k = 2d 0.034 and 0.014 vs averaging's 0.556 at d = 6). Round 3 asks what the profile
needs besides: does the standard arm learn with that recipe, and does the looped arm at half the batch (64)? The
looped arm did at batch 64 (0.039 vs 0.556, leaving the plateau after ~1,500 steps); the standard arm did not within
2,000 steps (0.80: it learned d = 2, train loss 0.62 at step 400, and lost it as d grew). Round 4 gives the standard
arm of the profile chosen from rounds 1-3 (d = 6, round 2's recipe, 2,400 steps) as configured and at lr 3e-4: it
learned at 3e-4 (0.079 vs averaging's 0.655) and not at 1e-3 (0.81), so the profile moved to 3e-4. Round 5 ran that
profile: the standard arm learned on a second seed (0.038), the looped arm did not on either (0.684, 0.861). Round 6:
the looped arm at 1e-3 on the same profile and seeds learned (0.029, 0.037). The profile trains each arm at the lr it
learned at (looped 1e-3, standard 3e-4: LoopedStudyConfig.standard_lr). Round 7 tries d = 10 at batch 128, which the
plan had set aside at 1.8 h on a T4 while it scaled these fp32 steps by 16-bit peaks; at fp32 peaks it plans 0.9 h
(3,200 steps, d + 1 every 300 from 2): both arms of that profile at their lrs, on the tuning seed. Both learned (error
at k = 2d: looped 0.026, standard 0.061, averaging 0.523), and the profile moved to that point.
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from helpers.looped import config as L
from helpers.looped import tasks as icl
from helpers.looped.training import ICLTrainConfig, baseline_errors, errors_vs_k, fixed, fixed_test_set, train_model
from helpers.models import LoopedConfig
from helpers.parallel import map_processes
from helpers.results import save_run

SEED = 100
# the gpu-small profile as it was when rounds 1-3 ran (d = 10, batch 32, lr 3e-4): their variants are built on it, so
# that they rerun as recorded
FORMER = L.LoopedStudyConfig(
    model=LoopedConfig(n_dims=10, n_positions=21, width=128, n_head=4, loops=30, window=15), standard_layers=12,
    train=ICLTrainConfig(steps=6_000, batch_size=32, lr=3e-4, dims=icl.Schedule(5, 10, 1, 500),
                         points=icl.Schedule(11, 21, 2, 500), loops=icl.Schedule(15, 30, 2, 200),
                         test_prompts=1280, log_every=200),
    seeds=(0, 1), option_steps=1_500, baseline_prompts=512, task_steps=1_500,
    tasks=("sparse_linear_regression", "decision_tree"))
# the profile rounds 4-6 ran on (d = 6, 2,400 steps), spelled out so that they rerun as recorded after it moved on
D6 = L.LoopedStudyConfig(
    model=LoopedConfig(n_dims=6, n_positions=13, width=128, n_head=4, loops=30, window=15), standard_layers=12,
    train=ICLTrainConfig(steps=2_400, batch_size=128, lr=1e-3, warmup=100, dims=icl.Schedule(2, 6, 1, 400),
                         points=icl.Schedule(5, 13, 2, 250), loops=icl.Schedule(4, 30, 2, 150),
                         test_prompts=1280, log_every=100), standard_lr=3e-4,
    seeds=(0, 1), option_steps=1_000, baseline_prompts=512, task_steps=1_000,
    tasks=("sparse_linear_regression", "decision_tree"))
# round 4 ran on the profile as rounds 1-3 chose it, at lr 1e-3; its result moved the standard arm to 3e-4
ROUND4 = dataclasses.replace(D6, train=dataclasses.replace(D6.train, lr=1e-3))
# rounds 5 and 6 ran on the profile at lr 3e-4 for both arms (round 6 sets the looped arm's own lr in its variants)
PROFILE5 = dataclasses.replace(D6, train=dataclasses.replace(D6.train, lr=3e-4))
# round 7: d = 10 (2d + 1 = 21 points), 3,200 steps, d + 1 every 300 steps (at 10 by step 2,400); each arm at its lr
ROUND7 = dataclasses.replace(D6, model=dataclasses.replace(D6.model, n_dims=10, n_positions=21),
                             train=dataclasses.replace(D6.train, steps=3_200, dims=icl.Schedule(2, 10, 1, 300),
                                                       points=icl.Schedule(5, 21, 2, 250)))


def variants(cfg, rnd: int = 1) -> dict:
    """{name: (arm, model overrides, training config[, seed])}, the seed SEED where it is not given.
    Round 1: the profile as configured, each arm; and the looped arm with the local regime's cures (a curriculum from
    d = 2 and from 4 loops, lr 1e-3). Round 2: the looped arm at the local regime's batch (128) and lr (1e-3, 100
    warmup steps), d = 2 -> 6 over 2,000 steps, in each token format. Round 3: that recipe for the standard arm, and
    for the looped arm at batch 64 (rounds 1-3 on FORMER). Round 4, on the profile chosen from them (ROUND4, lr 1e-3):
    its standard arm as configured, and at lr 3e-4. Round 5, on the profile at lr 3e-4 for both arms (PROFILE5): the
    looped arm on the tuning seed and on another, and the standard arm on another. Round 6, on PROFILE5: the looped
    arm at lr 1e-3 on the same two seeds. Round 7, on ROUND7: each arm at its lr (L.arm_train)."""
    t = dataclasses.replace(cfg.train, steps=2000, log_every=100, batch_size=128, lr=1e-3, warmup=100,
                            dims=icl.Schedule(2, 10, 1, 400), points=icl.Schedule(5, 21, 2, 250),
                            loops=icl.Schedule(4, 30, 2, 150))
    if rnd == 7:
        return {f"{arm}, d = 10, lr {L.arm_train(cfg, arm).lr:g}": (arm, {}, L.arm_train(cfg, arm))
                for arm in ("looped", "standard")}
    if rnd == 6:
        fast = dataclasses.replace(cfg.train, lr=1e-3)
        return {"looped, lr 1e-3": ("looped", {}, fast), "looped, lr 1e-3, seed 102": ("looped", {}, fast, 102)}
    if rnd == 5:
        return {"standard, as configured, seed 101": ("standard", {}, cfg.train, 101),
                "looped, as configured (lr 3e-4)": ("looped", {}, cfg.train),
                "looped, as configured, seed 102": ("looped", {}, cfg.train, 102)}
    if rnd == 4:
        return {"standard, as configured (d = 6)": ("standard", {}, cfg.train),
                "standard, as configured, lr 3e-4": ("standard", {}, dataclasses.replace(cfg.train, lr=3e-4))}
    if rnd == 3:
        return {"standard, batch 128, lr 1e-3, d=2 -> 6": ("standard", {}, t),
                "looped, batch 64, lr 1e-3, d=2 -> 6": ("looped", {}, dataclasses.replace(t, batch_size=64))}
    if rnd == 2:
        return {"looped, batch 128, lr 1e-3, d=2 -> 6": ("looped", {}, t),
                "looped, batch 128, lr 1e-3, d=2 -> 6, extra_dim": ("looped", {"token_format": "extra_dim"}, t)}
    first = dataclasses.replace(cfg.train, steps=1500, log_every=100)
    easier = dataclasses.replace(cfg.train, steps=2000, log_every=100, lr=1e-3, dims=icl.Schedule(2, 10, 1, 500),
                                 points=icl.Schedule(5, 21, 2, 500), loops=icl.Schedule(4, 30, 2, 250))
    return {"looped, as configured": ("looped", {}, first), "standard, as configured": ("standard", {}, first),
            "looped, from d=2 and 4 loops, lr 1e-3": ("looped", {}, easier)}


def probe(arm: str, overrides: dict, tcfg, cfg, seed: int = SEED) -> dict:
    mcfg = dataclasses.replace(L.arms(cfg)[arm], **overrides)
    res = train_model(mcfg, tcfg, seed)
    last = tcfg.steps - 1
    d, b = tcfg.dims(last), tcfg.loops(last)
    xs, ys, _ = fixed_test_set(dataclasses.replace(tcfg, dims=fixed(d), points=fixed(tcfg.points(last))),
                               mcfg.n_dims, seed=cfg.val_seed)
    k = min(2 * d, xs.shape[1] - 1)
    err = errors_vs_k(res["model"], xs, ys, icl.error_scale(tcfg.task, d), loops=b if mcfg.looped else None).mean(0)
    avg = baseline_errors(tcfg.task, xs, ys, d, len(xs))["averaging"].mean(0)
    tail = [v for s, v in res["curve"].items() if s > tcfg.steps - 500]
    return {"arm": arm, "steps": res["steps"], "lr": tcfg.lr, "d": d, "points": int(xs.shape[1]), "loops": b,
            "train_loss_last_500": sum(tail) / len(tail), "error_k2d": float(err[k]), "averaging_k2d": float(avg[k]),
            "ratio_to_averaging": float(err[k] / avg[k]), "wall_s": res["wall_s"], "curve": res["curve"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--round", type=int, choices=range(1, 8), default=1, help="which set of variants (default: 1)")
    rnd = ap.parse_args().round
    torch.set_num_threads(1)
    cfg = {4: ROUND4, 5: PROFILE5, 6: PROFILE5, 7: ROUND7}.get(rnd, FORMER)
    jobs = {name: (arm, over, tcfg, cfg, *rest) for name, (arm, over, tcfg, *rest) in variants(cfg, rnd).items()}
    rows = map_processes(probe, jobs, workers=2, progress="probe")
    for name, r in rows.items():
        print(f"{name:<42} {r['steps']:>5} steps (d = {r['d']}, {r['points']} points, {r['loops']} loops): train loss "
              f"{r['train_loss_last_500']:.3f} (1 = predicting zero), error at k = 2d {r['error_k2d']:.3f} vs "
              f"averaging {r['averaging_k2d']:.3f}")
    config = {"profile": "gpu-small", "seed": SEED, "model": dataclasses.asdict(cfg.model),
              "standard_layers": cfg.standard_layers, "val_seed": cfg.val_seed,
              "variants": {n: {"arm": a, "train": dataclasses.asdict(t), **({"model_overrides": o} if o else {}),
                               **({"seed": rest[0]} if rest else {})}
                           for n, (a, o, t, *rest) in variants(cfg, rnd).items()}}
    metrics = {f"{n}.{k}": v for n, r in rows.items() for k, v in r.items() if isinstance(v, float)}
    variant = "looped-first-steps" + ("" if rnd == 1 else f"-round{rnd}")
    path = save_run("benchmarks", "gpu_small_probe", variant, config, metrics, profile="gpu-small",
                    seed=SEED, device="cpu", curves={n: r["curve"] for n, r in rows.items()},
                    tables={"variants": [{"variant": n, **{k: v for k, v in r.items() if k != "curve"}}
                                         for n, r in rows.items()]})
    print(f"record: {path}")


if __name__ == "__main__":
    main()
