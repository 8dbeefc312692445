"""Command line: `python -m helpers <command>`.

  assets [--steps debs,corpora,smollm2,tokenizers]                  fetch and prepare the offline assets
  notebooks [--profile local] [--nb 01] [--quiet]                   execute notebooks with papermill, then Analysis
                                                                    (cell progress and outputs stream; QUIET=1: not)
  params [--json]                                                   seed 000's 26 parameter counts vs the notes
  plan [--markdown [--gpus N]] [--device t4] [--profile gpu-small]  a GPU profile's memory plan and estimated time
                                                                    per notebook on the benchmarked GPU
  point --notebook 07 --sweep grid (--variant NAME | --set KEY=VALUE ...) [--seed 0] [--profile full]
                                                                    train (or load) one point of a notebook's sweep,
                                                                    exactly as the notebook would (a W&B agent's
                                                                    command; --KEY=VALUE works as --set KEY=VALUE)
  points --list [--profile full] [--notebook 07] [--python python]  every point command of the notebooks' sweeps, one
                                                                    a line (each seed): the work list of a Slurm array
                                                                    or `xargs -P` (docs/several-gpus.md)
  sweeps [--profile full] [--out DIR] [--nb 07]                     write each notebook's sweeps as W&B sweep files
  pretrain [--profile tiny|local|gpu-small|full]                    the 00 notebook's from-scratch LM as a script
                                                                    (runs under `accelerate launch` on several GPUs)
  readme [--check]                                                  regenerate (or check) the generated blocks
                                                                    from results/: README.md's one-line-per-family
                                                                    table, docs/results.md's results

Each command imports what it runs inside its branch, so that `assets` (run right after `pip install`) or `readme`
never load torch, TRL and the model libraries.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("assets", help="fetch and prepare the offline assets")
    a.add_argument("--steps", default="debs,corpora,smollm2,tokenizers")
    n = sub.add_parser("notebooks", help="execute notebooks/NN_*.ipynb with papermill, then Analysis.ipynb")
    n.add_argument("--profile", default="local")
    n.add_argument("--nb", default="", help="run only notebooks whose number or name starts with this")
    n.add_argument("--no-analysis", action="store_true")
    n.add_argument("--quiet", action="store_true", help="one line per notebook (no cell progress, no cell output)")
    pp = sub.add_parser("params", help="parameter counts of the 26 Pythia experiments at full scale vs the notes")
    pp.add_argument("--json", action="store_true")
    pl = sub.add_parser("plan", help="memory plan and estimated time of every notebook (a GPU profile)")
    pl.add_argument("--profile", default="full", choices=("full", "gpu-small"), help="the GPU profile planned")
    pl.add_argument("--markdown", action="store_true", help="the table of docs/profiles.md")
    pl.add_argument("--device", default=None, help="show the plans on this card: h100, a100, t4, p100, ... (CARDS)")
    pl.add_argument("--gpus", type=int, default=None,
                    help="with --markdown: the notebooks' sweeps spread over this many GPUs (docs/several-gpus.md)")
    pt = sub.add_parser("point", help="train (or load) one point of one of a notebook's sweeps")
    pt.add_argument("--notebook", required=True, help="01_attention_lowrank or 01, ...")
    pt.add_argument("--sweep", required=True, help="the sweep's name (python -m helpers sweeps lists them)")
    pt.add_argument("--variant", default=None, help="the point's name (its record's variant)")
    pt.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="the point's dotted overrides")
    pt.add_argument("--seed", type=int, default=None, help="the training seed (one of the sweep's)")
    pt.add_argument("--profile", default=None, help="default: the notebook's PROFILE, else $NB_PROFILE, else auto")
    pt.add_argument("--force", action="store_true", help="retrain a point that already has a record")
    ps = sub.add_parser("points", help="list every point command of the notebooks' sweeps (an engine's work list)")
    ps.add_argument("--list", action="store_true", required=True, help="print one point command per line")
    ps.add_argument("--profile", default="full")
    ps.add_argument("--notebook", action="append", default=None, help="only this notebook (repeatable; 07 or its name)")
    ps.add_argument("--python", default="python", help="the interpreter the commands start (default: python)")
    sw = sub.add_parser("sweeps", help="write every notebook's sweeps as W&B sweep files (sweeps/<profile>/)")
    sw.add_argument("--profile", default="full")
    sw.add_argument("--out", default=None, help="folder (default: sweeps/<profile>)")
    sw.add_argument("--nb", action="append", default=None, help="only this notebook (repeatable)")
    t = sub.add_parser("pretrain", help="train the small from-scratch LM of notebook 00 (accelerate-launchable)")
    t.add_argument("--profile", default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-steps", type=int, default=None)
    rd = sub.add_parser("readme", help="regenerate README.md's headline table and docs/results.md's blocks "
                                        "from the records")
    rd.add_argument("--check", action="store_true", help="exit 1 if a block differs from what the records give")
    args, extra = p.parse_known_args(argv)
    if extra and args.cmd != "point":
        p.error(f"unrecognized arguments: {' '.join(extra)}")

    if args.cmd == "assets":
        from .paths import check_asset_steps

        try:
            steps = check_asset_steps(s for s in args.steps.split(",") if s)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        from .assets import AssetError, prepare_all

        try:
            info = prepare_all(steps)
        except (AssetError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(info, indent=1))
    elif args.cmd == "notebooks":
        from .notebooks import NotebookError, run_all

        try:
            quiet = args.quiet or bool(os.environ.get("QUIET"))
            run_all(args.profile, args.nb, analysis=not args.no_analysis, quiet=quiet)
        except (NotebookError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    elif args.cmd == "params":
        from .surgery.study import print_param_table

        return print_param_table(as_json=args.json)
    elif args.cmd == "plan":
        from .families import all_plans
        from .planning import CARDS, markdown, spread_markdown

        if args.device and args.device.lower() not in CARDS:
            print(f"error: unknown device '{args.device}'; allowed: {', '.join(CARDS)}", file=sys.stderr)
            return 2
        plans = all_plans(profile=args.profile)
        if args.device:
            plans = [p.on(CARDS[args.device.lower()]) for p in plans]
        if args.markdown and args.gpus:
            print(spread_markdown(plans, args.gpus, packed=any(p.per_device > 1 for p in plans)))
        else:
            print(markdown(plans) if args.markdown else "\n\n".join(p.text() for p in plans))
    elif args.cmd == "point":
        return point_command(args, extra)
    elif args.cmd == "points":
        from .points import point_commands
        from .sweep import SweepError

        try:
            lines = point_commands(args.profile, args.notebook, args.python)
        except (SweepError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print("\n".join(lines))
    elif args.cmd == "sweeps":
        from .points import export
        from .sweep import SweepError

        try:
            for path in export(args.profile, args.out, args.nb):
                print(path)
        except (SweepError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    elif args.cmd == "pretrain":
        pretrain_command(args.profile, args.seed, args.max_steps)
    elif args.cmd == "readme":
        from .readme import main as readme_main

        return readme_main(check=args.check)
    return 0


def point_command(args, extra: list[str]) -> int:
    """`python -m helpers point`: W&B's ${args} arrive as --KEY=VALUE (--seed=0, --variant=..., --lm.train.lr=...).
    The point trains in this process, which runs nothing else (helpers.parallel.IN_PROCESS)."""
    from . import parallel
    from .points import run_point
    from .sweep import SweepError

    sets = dict(kv.split("=", 1) for kv in args.set if "=" in kv)
    bad = [kv for kv in args.set if "=" not in kv]
    rest = list(extra)
    while rest:                          # --KEY=VALUE or --KEY VALUE (W&B's ${args} has used both)
        a = rest.pop(0)
        if a.startswith("--") and "=" in a:
            sets.update([a[2:].split("=", 1)])
        elif a.startswith("--") and rest and not rest[0].startswith("--"):
            sets[a[2:]] = rest.pop(0)
        else:
            bad.append(a)
    if bad:
        print(f"error: {bad}: give overrides as --set KEY=VALUE or --KEY=VALUE", file=sys.stderr)
        return 2
    here, parallel.IN_PROCESS = parallel.IN_PROCESS, True
    try:
        rec = run_point(args.notebook, args.sweep, args.variant, sets or None, args.seed, args.profile, args.force)
    except (SweepError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        parallel.IN_PROCESS = here          # main() called in-process (tests) leaves the switch as it found it
    shown = {k: v for k, v in rec["metrics"].items() if isinstance(v, (int, float))}
    print(f"{rec['notebook']} {rec['experiment']} {rec['variant']!r} seed {rec['seed']}: run id {rec['run_id']}; "
          + ", ".join(f"{k} {v:.4g}" for k, v in list(shown.items())[:4]))
    return 0


def pretrain_command(profile: str, seed: int, max_steps: int | None) -> None:
    """`python -m helpers pretrain` / `accelerate launch -m helpers pretrain`: notebook 00's section 3 as a script.

    Under accelerate/torchrun every process trains on its shard (the Trainer handles DDP); rank 0 writes the record.
    """
    from .families import notebooks_of, resolve
    from .pretrain import pretrain
    from .results import save_run

    notebook = notebooks_of("baselines")[0]
    rank = int(os.environ.get("RANK", 0))
    run = resolve(notebook, profile, seed=seed, quiet=rank != 0)
    lm = run.cfg.lm
    if max_steps:
        lm = dataclasses.replace(lm, train=dataclasses.replace(lm.train, max_steps=max_steps))
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if run.device == "cuda" else run.device
    res = pretrain(lm, device=device, seed=seed)
    if rank == 0:
        path = save_run(notebook, "pretrain", "neox-from-scratch-cli", {"lm": dataclasses.asdict(lm)}, res["metrics"],
                        profile=run.profile, seed=seed, curves=res["curves"], params=res["params"],
                        provenance=res["provenance"], device=run.device)
        print(f"eval_loss {res['metrics'].get('eval_loss'):.4f}  world_size {res['provenance']['world_size']}  "
              f"-> {path}")


if __name__ == "__main__":
    sys.exit(main())
