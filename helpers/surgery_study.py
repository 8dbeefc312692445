"""Seed 000: the 26 low-rank surgery experiments on Pythia trained from scratch (notebooks 01-03).

Sections: `run_experiments(run, ids)` trains every (experiment, seed) through the sweep runner (recorded runs are
loaded, not retrained) and returns their records; summaries, tables, figures, the conclusion and `report()`
(Analysis.ipynb) are functions of records.

Registry: every experiment under its seed number and name, as a tuple of surgery ops (helpers.surgery), with the
parameter count the notes printed. `param_table()` recomputes every count at full scale on the `meta` device (no
weights downloaded) and compares: 24 rows match exactly, 2 differ for reasons given in `note`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .models import PYTHIA
from .stats import describe, verdicts, welch
from .surgery import Op
from .train import TrainConfig

if TYPE_CHECKING:
    import pandas as pd

LL8 = Op("qkv", "lowrank", 8)
NO_DENSE = Op("dense", "remove")


def partial(k: int) -> tuple[Op, ...]:
    """The 'partial' attention of experiments 12-24: layers < k keep the full query_key_value, the rest get LinearLora
    r=8, and no layer keeps the output projection `dense` (the notes say 'full attention'; the counts prove the dense
    is gone everywhere)."""
    return (Op("qkv", "lowrank", 8, f"after:{k}"), NO_DENSE)


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    model: str                      # "410m" | "2.8b"
    ops: tuple[Op, ...]
    notes_params: int
    counted: str = "total"          # which count the notes printed: total | trainable
    note: str = ""                  # why our count differs from the notes (empty: it matches)
    notebook: str = ""
    claim: str = ""                 # the notes' verbal result, where there is one

    def describe(self) -> str:
        return "; ".join(o.describe() for o in self.ops) or "original"


def _e(id, name, model, ops, notes, nb, **kw):
    return Experiment(id, name, model, tuple(ops), notes, notebook=nb, **kw)


A, M, P = NB_ATTENTION, NB_MLP, NB_PARTIAL = "01_attention_lowrank", "02_mlp_lowrank", "03_partial_layers"
NOTEBOOKS = (NB_ATTENTION, NB_MLP, NB_PARTIAL)
TITLE = "Pythia low-rank surgery (seed 000, notebooks 01-03)"
EXPERIMENTS = {e.id: e for e in [
    _e(1, "original-model-pythia-410m-1", "410m", [], 405_334_016, A),
    _e(2, "linear-lora-8-2", "410m", [LL8], 330_623_168, A),
    _e(3, "nonlinear-lora-8-3", "410m", [Op("qkv", "nonlinear", 8)], 330_623_168, A),
    _e(4, "linear-lora-32-4", "410m", [Op("qkv", "lowrank", 32)], 332_983_040, A),
    _e(5, "linear-lora-256-5", "410m", [Op("qkv", "lowrank", 256)], 355_008_512, A),
    _e(6, "no-attention-6", "410m", [Op("attention", "remove")], 304_572_416, A),
    _e(7, "linear-lora-8-all-attention-7", "410m", [LL8, Op("dense", "lowrank", 8)], 305_850_752, A),
    _e(8, "linear-lora-8-no-dense-8", "410m", [LL8, NO_DENSE], 305_432_768, A),
    _e(9, "linea-mlp-9", "410m", [LL8, NO_DENSE, Op("mlp", "linearize")], 305_432_768, M),
    _e(10, "nonlinear-lora-8-mlp-10", "410m", [LL8, NO_DENSE, Op("mlp", "bottleneck", 8)], 104_401_280, M),
    _e(11, "nonlinear-lora-768-mlp-11", "410m", [LL8, NO_DENSE, Op("mlp", "bottleneck", 768)], 141_775_040, M),
    _e(12, "partial-linear-lora-8-attention-12", "410m", partial(1), 308_545_720, P),
    _e(13, "6-layers-partial-linear-lora-8-attention-13", "410m", partial(6), 324_110_480, P),
    _e(14, "3-layers-partial-linear-lora-8-attention-14", "410m", partial(3), 314_771_624, P),
    _e(15, "2-layers-partial-linear-lora-8-attention-15", "410m", partial(2), 311_658_672, P),
    _e(16, "3-layers-partial-linear-lora-6-nonlinear-lora-8-attention-16", "410m",
       [*partial(3), Op("mlp", "bottleneck", 8, "after:6")], 163_998_008, P,
       claim="marked WRONG by its author; kept as run"),
    _e(17, "3-layers-partial-linear-lora-12-nonlinear-lora-8-attention-17", "410m",
       [*partial(3), Op("mlp", "bottleneck", 8, "after:12")], 214_255_880, P,
       claim="marked WRONG by its author; kept as run"),
    _e(18, "3-layers-partial-linear-lora-12-nonlinear-lora-8-256-attention-18", "410m",
       [*partial(3), Op("mlp", "bottleneck", 256, "after:12")], 214_255_880, P,
       note="implemented as titled (MLP bottleneck r=256): 220,353,704; the notes printed 214,255,880, which is "
            "experiment 17's count, i.e. rank 8"),
    _e(19, "original-model-pythia-2.8b-19", "2.8b", [], 2_775_208_960, P),
    _e(20, "3-layers-partial-linear-lora-8-pythia-2.8b-20", "2.8b", partial(3), 1_997_624_552, P),
    _e(21, "6-layers-partial-linear-lora-8-pythia-2.8b-21", "2.8b", partial(6), 2_056_361_168, P),
    _e(22, "6-layers-partial-...-20-layers-LoraMLP-8-22", "410m", [*partial(6), Op("mlp", "lora", 16, "20-23")],
       291_211_536, M),
    _e(23, "6-layers-partial-...-12-18-layers-LoraMLP-8-23", "410m", [*partial(6), Op("mlp", "lora", 16, "12-18")],
       266_537_328, M, claim="matched the original"),
    _e(24, "6-layers-partial-...-12-18-layers-LoraMLP-8-24", "2.8b", [*partial(6), Op("mlp", "lora", 16, "12-18")],
       1_692_226_992, P, claim="matched the original"),
    _e(25, "freeze-embeddings-25", "410m", [Op("embed", "freeze")], 353_822_720, A, counted="trainable",
       claim="loss much higher"),
    _e(26, "lora-embeddings-26", "410m", [Op("embed", "factorize", 512)], 405_334_016, A,
       note="the factorized embedding (50304x512)@(512x1024) gives 380,102,656; the notes printed the unmodified "
            "model's count",
       claim="loss higher, only ~10M fewer params"),
]}
NOTEBOOK_OF = {e.id: e.notebook for e in EXPERIMENTS.values()}


def get(ids) -> list[Experiment]:
    out = []
    for i in ids:
        if i not in EXPERIMENTS:
            raise ValueError(f"unknown experiment id {i!r}; allowed: 1-{max(EXPERIMENTS)}")
        out.append(EXPERIMENTS[i])
    return out


def full_count(exp: Experiment) -> dict:
    """Parameter counts of the experiment at full scale: config -> model on the meta device -> surgery -> count."""
    from .models import from_config, param_counts, pythia_config
    from .surgery import apply_surgery

    model = from_config(pythia_config(exp.model), device="meta")
    apply_surgery(model, exp.ops)
    return param_counts(model)


def param_table(ids=None) -> list[dict]:
    """id, name, ours, notes, status (match / explained / MISMATCH) for every experiment."""
    rows = []
    for exp in get(ids or sorted(EXPERIMENTS)):
        ours = full_count(exp)[exp.counted]
        status = "match" if ours == exp.notes_params else ("explained" if exp.note else "MISMATCH")
        rows.append({"id": exp.id, "name": exp.name, "model": exp.model, "surgery": exp.describe(),
                     "ours": ours, "notes": exp.notes_params, "counted": exp.counted, "status": status,
                     "note": exp.note})
    return rows


def print_param_table(as_json: bool = False) -> int:
    import json

    rows = param_table()
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'id':>3}  {'name':<66} {'ours':>15} {'notes':>15}  status")
        for r in rows:
            print(f"{r['id']:>3}  {r['name']:<66} {r['ours']:>15,} {r['notes']:>15,}  {r['status']}")
        for r in rows:
            if r["note"]:
                print(f"  {r['id']}: {r['note']}")
        n = {s: sum(r["status"] == s for r in rows) for s in ("match", "explained", "MISMATCH")}
        print(f"{n['match']} match, {n['explained']} explained, {n['MISMATCH']} mismatch")
    return 0 if all(r["status"] != "MISMATCH" for r in rows) else 1


# ------------------------------------------------------------------------------------------------ training
@dataclass
class SurgeryConfig:
    """How the experiments are trained in one profile. Model sizes are {"410m": ..., "2.8b": ...}: None means the
    real Pythia config; a dict gives a narrower model with the same depth, so layer indices of the partial
    experiments (first k layers, layers 12-18, 20-23) keep their meaning."""

    corpus: str = "en"
    tokenizer: str = "en-bpe-2048"
    block: int = 64
    sizes: dict = field(default_factory=lambda: {"410m": None, "2.8b": None})
    scale_ranks: bool = True          # rank * (local width / Pythia width), at least 1: keeps the compression ratio
    seeds: tuple = (0, 1, 2)
    train: TrainConfig = field(default_factory=lambda: TrainConfig())
    epochs: float | None = None       # set: max_steps and eval_every follow from the data (one eval per epoch)
    train_docs: int | None = None
    eval_blocks: int | None = 64      # None = the whole validation split
    workers: int = 1                  # parallel training processes (CPU: one per core, one thread each)
    micro_batch: dict | None = None   # {"2.8b": (batch_size, grad_accum)}: a size's own split of the same step

    def __post_init__(self):
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        for name, split in (self.micro_batch or {}).items():
            if name not in PYTHIA or len(split) != 2 or min(split) < 1:
                raise ValueError(f"micro_batch entries are size: (batch_size, grad_accum) with sizes "
                                 f"{', '.join(PYTHIA)} and both >= 1, got {name}: {split}")
        if set(self.sizes) != {"410m", "2.8b"}:
            raise ValueError(f"sizes needs keys '410m' and '2.8b', got {sorted(self.sizes)}")
        for name, size in self.sizes.items():
            if size is not None and size.get("layers") != PYTHIA[name]["num_hidden_layers"]:
                raise ValueError(f"the {name} stand-in must keep Pythia's {PYTHIA[name]['num_hidden_layers']} "
                                 f"layers (layer indices of the specs refer to them), got {size.get('layers')}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


def model_config(cfg: SurgeryConfig, which: str, vocab_size: int):
    """Pythia config (full) or its narrow stand-in; returns (config, rank_factor)."""
    from .models import pythia_config

    size = cfg.sizes[which]
    full = pythia_config(which)
    if size is None:
        return pythia_config(which, vocab_size=max(vocab_size, full.vocab_size)), 1.0
    conf = pythia_config(which, hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                         num_attention_heads=size["heads"], intermediate_size=4 * size["hidden"],
                         vocab_size=vocab_size, max_position_embeddings=max(cfg.block, 64))
    return conf, (size["hidden"] / full.hidden_size if cfg.scale_ranks else 1.0)


_DATA = {}


def _data(cfg: SurgeryConfig):
    """Tokenized train / validation blocks, cached per process (workers load once, then reuse)."""
    from .data import lm_blocks, load_corpus, load_tokenizer

    key = (cfg.corpus, cfg.tokenizer, cfg.block, cfg.train_docs, cfg.eval_blocks)
    if key not in _DATA:
        tok = load_tokenizer(cfg.tokenizer)
        dsd = load_corpus(cfg.corpus)
        train = dsd["train"] if cfg.train_docs is None else dsd["train"].select(range(min(cfg.train_docs, len(dsd["train"]))))
        _DATA[key] = (len(tok), lm_blocks(train, tok, cfg.block),
                      lm_blocks(dsd["validation"], tok, cfg.block, max_blocks=cfg.eval_blocks))
    return _DATA[key]


def run_config(cfg: SurgeryConfig, exp: Experiment, profile: str) -> dict:
    """What determines a run (and so its record id): the experiment's ops, model size, data, training (the
    profile is added by the results store)."""
    from dataclasses import asdict

    return {"experiment": exp.id, "surgery": exp.describe(), "model": exp.model,
            "size": cfg.sizes[exp.model], "scale_ranks": cfg.scale_ranks, "corpus": cfg.corpus,
            "tokenizer": cfg.tokenizer, "block": cfg.block, "epochs": cfg.epochs, "train_docs": cfg.train_docs,
            "eval_blocks": cfg.eval_blocks, "train": asdict(cfg.train)}


def train_experiment(exp_id: int, seed: int, cfg: SurgeryConfig, device: str = "cpu") -> dict:
    """Build the (stand-in) model with the experiment's surgery, train it from scratch, return the run result."""
    import dataclasses
    import math

    import torch

    from .models import from_config, param_counts
    from .paths import checkpoints_dir
    from .results import run_id
    from .surgery import apply_surgery
    from .train import train_causal_lm

    exp = EXPERIMENTS[exp_id]
    vocab, train, val = _data(cfg)
    conf, factor = model_config(cfg, exp.model, vocab)
    torch.manual_seed(seed)
    model = from_config(conf, device=device)
    apply_surgery(model, exp.ops, rank_factor=factor)
    tcfg = cfg.train
    if exp.model in (cfg.micro_batch or {}):
        bs, accum = cfg.micro_batch[exp.model]
        tcfg = dataclasses.replace(tcfg, batch_size=bs, grad_accum=accum)
    if cfg.epochs:
        per_epoch = math.ceil(len(train) / (tcfg.batch_size * tcfg.grad_accum))
        tcfg = dataclasses.replace(tcfg, max_steps=max(1, round(cfg.epochs * per_epoch)), eval_every=per_epoch)
    tcfg = dataclasses.replace(tcfg, run_name=f"exp{exp_id:02d}-s{seed}")
    # a long run (full profile: checkpoint_every_s) keeps its newest checkpoint in a folder named after what
    # determines it, so the same run started again after a crash resumes there
    folder = checkpoints_dir() / exp.notebook / run_id(exp.name, dataclasses.asdict(cfg), seed) \
        if tcfg.checkpoint_every_s else None
    res = train_causal_lm(model, train, val, tcfg, device=device, seed=seed, checkpoint_dir=folder)
    res.pop("model")
    res["params"] = {**param_counts(model), "full_scale": full_count(exp)[exp.counted], "notes": exp.notes_params,
                     "rank_factor": factor}
    return res


def run_experiments(run, ids, force: bool = False) -> dict:
    """Train every (experiment, seed) of `ids` under `run.cfg` through the sweep runner (a run whose record exists
    is loaded instead; force retrains), one record each; returns {(experiment name, seed): record}.

    With cfg.workers > 1 on a CPU the runs go to spawned worker processes with one torch thread each."""
    from .sweep import Point, run_points

    cfg = run.cfg
    # an experiment shared by several notebooks (the originals 1 and 8) is recorded once, in its home notebook
    points = [Point(f"exp{e.id:02d}", e.name, (e.id, cfg), run_config(cfg, e, run.profile), notebook=e.notebook)
              for e in get(ids)]
    return run_points(run, points, _train_job, cfg.seeds, cfg.workers, force, "runs")


def _train_job(exp_id: int, cfg: SurgeryConfig, seed: int, device: str) -> dict:
    return train_experiment(exp_id, seed, cfg, device)


def rows(records) -> "pd.DataFrame":
    """One row per run record of seed 000 (id, name, seed, losses, tokens/s, params, validation curve)."""
    import pandas as pd

    out = []
    for r in (records.values() if isinstance(records, dict) else records):
        exp_id = int(r["experiment"][3:])
        out.append({"id": exp_id, "name": EXPERIMENTS[exp_id].name, "seed": r["seed"], **r["metrics"],
                    **{f"params.{k}": v for k, v in r["params"].items()}, "curve": r["curves"].get("eval_loss", {}),
                    "peak_mem_mb": r["provenance"].get("peak_mem_mb")})
    return pd.DataFrame(out).sort_values(["id", "seed"]).reset_index(drop=True)


def summarize(df, reference=None) -> "pd.DataFrame":
    """Mean +- std over seeds per experiment, with parameters, ratio and delta to the original of the same model
    (experiment 1 or 19). `reference`: a summary holding originals this df lacks (from notebook 01's records)."""
    import math

    import pandas as pd

    g = df.groupby(["id", "name"], sort=True)
    out = g.agg(params=("params.total", "first"), full_scale=("params.full_scale", "first"),
                loss_mean=("eval_loss", "mean"), loss_std=("eval_loss", "std"), seeds=("seed", "count"),
                tokens_per_s=("tokens_per_s", "mean")).reset_index()
    out["loss_std"] = out["loss_std"].fillna(0.0)
    out["ppl"] = out["loss_mean"].map(lambda x: math.exp(min(x, 50)))
    base = {"410m": 1, "2.8b": 19}
    ref = out.set_index("id")
    if reference is not None:
        extra = reference[~reference["id"].isin(ref.index)].set_index("id")
        ref = pd.concat([ref, extra])
    comps = {}
    for i, row in out.iterrows():
        b = base[EXPERIMENTS[row["id"]].model]
        if b in ref.index:
            out.loc[i, "params_ratio"] = row["params"] / ref.loc[b, "params"]
            if row["id"] != b:
                comps[i] = welch(row["loss_mean"], row["loss_std"], int(row["seeds"]), ref.loc[b, "loss_mean"],
                                 ref.loc[b, "loss_std"], int(ref.loc[b, "seeds"]))
    # one family of comparisons per table: Holm over every variant compared with its original here
    for i, v in zip(comps, verdicts(list(comps.values()))):
        for col, key in (("delta_loss", "diff"), ("delta_se", "se"), ("df", "df"), ("p", "p"), ("p_holm", "p_holm"),
                         ("n_ref", "n_b"), ("verdict", "verdict"), ("m", "m"), ("t", "t"), ("test", "test")):
            out.loc[i, col] = v[key]
    return out


def mean_curves(df) -> dict:
    """{"<id> <name>": {step: mean validation loss over seeds}} for plotting (curve keys may be JSON strings)."""
    out = {}
    for exp_id, g in df.groupby("id"):
        curves = [{int(k): v for k, v in c.items()} for c in g["curve"]]
        steps = sorted({s for c in curves for s in c})
        out[f"{exp_id} {EXPERIMENTS[exp_id].name[:28]}"] = {
            s: sum(c[s] for c in curves if s in c) / sum(1 for c in curves if s in c) for s in steps}
    return out


def conclusion(summary) -> str:
    """Plain sentences from the measured numbers: each variant against the original of its model by Welch's t-test
    over seeds, Holm-corrected over the table's comparisons; one seed in an arm is "n = 1: no test"."""
    if "delta_loss" not in summary.columns:
        return "no original to compare with in this profile (run notebook 01 first for experiment 1)"
    lines = []
    for _, r in summary.dropna(subset=["delta_loss"]).sort_values("delta_loss").iterrows():
        exp = EXPERIMENTS[int(r["id"])]
        row = {"diff": r["delta_loss"], "n_a": int(r["seeds"]), "n_b": int(r["n_ref"]), "test": r["test"],
               "verdict": r["verdict"], "t": _num(r["t"]), "df": _num(r["df"]), "p": _num(r["p"]),
               "p_holm": _num(r["p_holm"]), "m": int(r["m"])}
        lines.append(f"exp {int(r['id']):>2} ({exp.describe()}): {r['params_ratio']:.2f}x the parameters, loss "
                     f"{r['loss_mean']:.3f} +- {r['loss_std']:.3f}, delta {describe(row)}")
    return "\n".join(lines) or "no original to compare with in this profile (run notebook 01 first for experiment 1)"


def _num(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


_TINY_SIZES = {"410m": {"hidden": 16, "layers": 24, "heads": 2}, "2.8b": {"hidden": 16, "layers": 32, "heads": 2}}
# local: Pythia's depths at width 32 (head size 16, rotary dims 4); measured on 2 cores: the 410m stand-in trains at
# ~12k tokens/s on one thread and ends ~0.7 nats below the unigram line in 200 steps. The 2.8b stand-in is larger by
# depth (32 layers, 1.3x the parameters): at width 40 notebooks 01-03 took 16 min, over the 15-minute target
_LOCAL_SIZES = {"410m": {"hidden": 32, "layers": 24, "heads": 2}, "2.8b": {"hidden": 32, "layers": 32, "heads": 2}}
PROFILES = {
    "tiny": SurgeryConfig(sizes=_TINY_SIZES, block=16, seeds=(0,), train_docs=10, eval_blocks=4, workers=1,
                          train=TrainConfig(max_steps=3, batch_size=4, lr=3e-3, log_every=1, eval_every=3,
                                            progress=False)),
    "local": SurgeryConfig(sizes=_LOCAL_SIZES, block=64, seeds=(0, 1, 2), eval_blocks=128, workers=2,
                           train=TrainConfig(max_steps=200, batch_size=16, lr=4e-3, scheduler="linear",
                                             warmup_steps=10, log_every=25, eval_every=50, progress=False)),
    "full": SurgeryConfig(corpus="wikitext2", tokenizer="EleutherAI/pythia-410m", block=1024, seeds=(0,),
                          epochs=10, eval_blocks=None, workers=1,
                          # 16 sequences per step, as micro-batch 8 x 2: 3.5x the tokens/s of 2 x 8 for 410m on an
                          # H100 (results/benchmarks/throughput-*); 2.8b as 2 x 8 (measured peak 44 GB at batch 2)
                          micro_batch={"2.8b": (2, 8)},
                          train=TrainConfig(batch_size=8, grad_accum=2, lr=5e-5, weight_decay=0.0,
                                            checkpoint_every_s=1800,           # resumable after a crash
                                            scheduler="linear", warmup_steps=0, log_every=50)),
}


def load_reference(run):
    """Summary of the original (experiment 1) as notebook 01 recorded it with the same profile, model size, data and
    training config, so notebooks 02/03 report deltas without training it again; None if 01 has not run."""
    from .results import find_record

    exp = EXPERIMENTS[1]
    recs = [find_record(exp.notebook, exp.name, {"profile": run.profile, **run_config(run.cfg, exp, run.profile)}, s)
            for s in run.cfg.seeds]
    recs = [r for r in recs if r is not None]
    return summarize(rows(recs)) if recs else None


def table_from_records(records: list[dict]):
    """The all-26 table from run records: each experiment from its home notebook."""
    recs = [r for r in records if str(r["experiment"]).startswith("exp")
            and r["notebook"] == NOTEBOOK_OF.get(int(r["experiment"][3:]))]
    if not recs:
        return None
    out = summarize(rows(recs))
    out["notes_params"] = out["id"].map(lambda i: EXPERIMENTS[i].notes_params)
    return out


def claims(summary) -> str:
    """The notes' verbal results beside what we measured (difference to the original, 2 standard errors)."""
    verdicts = {}
    for line in conclusion(summary).splitlines():
        verdicts[int(line.split()[1])] = line
    out = []
    for exp in EXPERIMENTS.values():
        if exp.claim and "WRONG" not in exp.claim:
            ours = verdicts.get(exp.id, f"exp {exp.id}: not measured in this profile")
            out.append(f"notes: exp {exp.id} '{exp.claim}'\n   ours: {ours}")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ figures, report
def spec_table(ids):
    """The experiments and their parameter counts at full scale (meta device) against the notes."""
    import pandas as pd

    return pd.DataFrame(param_table(ids)).set_index("id")[["name", "model", "surgery", "ours", "notes", "status",
                                                           "note"]]


def curves_figure(df, title: str):
    """Validation loss over steps, mean over seeds, one line per experiment."""
    import matplotlib.pyplot as plt

    from . import plots

    fig, ax = plt.subplots(figsize=(8, 4.5))
    plots.curves(ax, mean_curves(df), title=title)
    return fig


def params_figure(summary, title: str):
    """Final validation loss (mean +- std over seeds) against parameters, with the Pareto frontier."""
    import matplotlib.pyplot as plt

    from . import plots

    fig, ax = plt.subplots(figsize=(8, 4.5))
    plots.loss_vs_params(ax, summary, title=title)
    return fig


TABLE_COLUMNS = ["id", "name", "params", "params_ratio", "loss_mean", "loss_std", "seeds", "delta_loss", "delta_se",
                 "tokens_per_s", "full_scale", "notes_params"]


def report(records: list[dict]):
    """Analysis.ipynb's section for notebooks 01-03: the all-26 table, loss vs parameters, the notes' claims."""
    from .analysis import Report

    rep = Report(TITLE, records)
    table = table_from_records(rep.records)
    if table is not None:
        rep.table("all experiments: parameters, validation loss over seeds, delta to the original of the same model",
                  table[TABLE_COLUMNS])
        rep.figure("validation loss vs parameters", params_figure(table, "seed 000: validation loss vs parameters "
                                                                         "(Pareto frontier dashed)"))
        rep.text = conclusion(table) + "\n\nThe notes' claims:\n" + claims(table)
    return rep
