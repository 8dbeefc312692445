"""Seed 000: the 26 low-rank surgery experiments on Pythia trained from scratch (notebooks 01-03).

  settings       SurgeryConfig and PROFILES (local: the regime search's point, `make surgery-regime`)
  counts         param_table: every count recomputed at full scale on the `meta` device (no weights downloaded),
                 24 rows match the notes exactly, 2 differ for reasons given in their `note`; spec_table, check_specs
  runs           run_experiments(run, ids): every (experiment, seed) through the sweep runner (recorded runs are
                 loaded, not retrained), {(variant, seed): record}; sweeps; load_reference (01's exps 1 and 6)
  regime search  helpers.surgery.regime (benchmarks/surgery_regime.py)
  plan           full_plan: the full profile's plan on a GPU (helpers.planning)
The experiments are data (helpers.surgery.experiments: ops per experiment, the notes' counts, stand-in mapping);
tables, figures and the conclusion are functions of records in helpers.surgery.report.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field

import torch

from ..analysis import frame
from ..data import check_tokenizer_name
from ..memory import training_plan
from ..models import PYTHIA, from_config, param_counts, pythia_config
from ..paths import checkpoints_dir
from ..planning import WIKITEXT2_TRAIN_TOKENS, NotebookPlan, train_seconds
from ..precision import precision_for
from ..pretrain import lm_data
from ..results import find_record, keyed, run_id
from ..sweep import Point, Sweep, run_sweep
from ..train import TrainConfig, train_causal_lm
from .experiments import (
    EXPERIMENTS,
    Experiment,
    get,
    layers_of,
    rank_factor,
    same_model,
    stand_in,
    stand_in_ops,
)
from .ops import apply_surgery

# the family registry (PROFILES, full_plan), helpers.points (sweeps), the CLI (print_param_table), notebooks 01-03
__all__ = ["PROFILES", "full_plan", "sweeps", "print_param_table", "spec_table", "run_experiments", "load_reference"]


# ------------------------------------------------------------------------------------------------ settings
@dataclass
class SurgeryConfig:
    """How the experiments are trained in one profile. Model sizes are {"410m": ..., "2.8b": ...}: None means the
    real Pythia config; a dict {"hidden", "layers", "heads"} gives a stand-in. A shallower stand-in gets the
    partial-layer selections (first k layers, layers 12-18, 20-23) mapped by depth fraction
    (helpers.surgery.map_layers), and ranks scaled by the width ratio (scale_ranks); experiments that become the same
    model after both are trained once and reported as "same model as N"."""

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
    # spread: the eval blocks evenly spaced over the whole validation split (every document, both sources) and,
    # with train_tokens, the train blocks evenly spaced over the train split (helpers.pretrain.lm_data); train_tokens:
    # the train blocks the runs train on, ceil(train_tokens / block) of them (None: the whole split). With both set
    # and max_steps x batch x block = train_tokens, a run sees every train block once: the n-gram ladder in its
    # record is built from exactly the text it saw.
    spread: bool = False
    train_tokens: int | None = None
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
            if size is None:
                continue
            if set(size) != {"hidden", "layers", "heads"}:
                raise ValueError(f"the {name} stand-in size needs exactly hidden, layers, heads; got {sorted(size)}")
            depth = PYTHIA[name]["num_hidden_layers"]
            if not 1 <= size["layers"] <= depth:
                raise ValueError(f"the {name} stand-in has {size['layers']} layers; allowed: 1-{depth} (Pythia-{name}"
                                 f"'s depth; layer selections are mapped onto fewer layers by depth fraction)")
            if size["hidden"] < 1 or size["heads"] < 1 or size["hidden"] % size["heads"]:
                raise ValueError(f"the {name} stand-in's hidden {size['hidden']} must be a positive multiple of its "
                                 f"heads {size['heads']}")
        check_tokenizer_name(self.tokenizer)
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


# tiny: the local profile's code path (bytes, depth mapping, same-model marking, spread evaluation) at a size that
# trains in seconds
_TINY_SIZES = {"410m": {"hidden": 16, "layers": 6, "heads": 2}, "2.8b": {"hidden": 16, "layers": 8, "heads": 2}}
# local: chosen by the regime search (benchmarks/surgery_regime.py; records results/01_attention_lowrank/regime-*,
# table in Analysis): UTF-8 bytes and a shallow, wide stand-in, where a trained original uses attention. Pythia's
# deep-narrow shape at width 32 with a 2048-token BPE ends above the bigram line of its own tokens (attention looks
# free there because nothing was learned). Layer selections are mapped by depth fraction (24 -> 6 and 32 -> 8
# layers); the 2.8b stand-in is larger by depth only (same width).
# Issue 39 raised the bar from the bigram to the trigram table of the very text a run trains on, evaluated on blocks
# spread over every validation document (the old 256 blocks were the first chapter or two): the search's rule
# (helpers.surgery.summary.regime_choice, fixed before its points ran) wants the original >= 0.10 nats below that
# trigram on the search seed with a gap >= 0.3. 300 steps end 0.089 above it, 600 steps 0.077 below (4 x 128 the
# same, lr 1e-2 worse), 900 steps 0.185 below: the rule picks 900 steps x 16 x 64 bytes, each train block seen once.
# What that costs: 3x the steps of the old point; to stay near the time target the notebooks keep 2 seeds (the
# tests pool the variance over every arm of a family, so n = 2 an arm still leaves df = arms), not 3.
_LOCAL_SIZES = {"410m": {"hidden": 96, "layers": 6, "heads": 4}, "2.8b": {"hidden": 96, "layers": 8, "heads": 4}}
PROFILES = {
    "tiny": SurgeryConfig(tokenizer="bytes", sizes=_TINY_SIZES, block=16, seeds=(0,), train_docs=10, eval_blocks=4,
                          workers=1, spread=True,
                          train=TrainConfig(max_steps=3, batch_size=4, lr=3e-3, log_every=1, eval_every=3,
                                            progress=False)),
    "local": SurgeryConfig(tokenizer="bytes", sizes=_LOCAL_SIZES, block=64, seeds=(0, 1), eval_blocks=256,
                           workers=2, spread=True, train_tokens=900 * 16 * 64,
                           train=TrainConfig(max_steps=900, batch_size=16, lr=5e-3, scheduler="linear",
                                             warmup_steps=10, log_every=50, eval_every=100, progress=False)),
    # gpu-small: one 16 GB GPU without bf16 (T4, P100), each notebook under an hour by the plan on a T4: the seed's
    # data and tokenizer (WikiText-2, Pythia's BPE, sequences of 1,024) on Pythia-70m's shape standing in for 410m
    # and a deeper one of the same width (12 layers, as local's 2.8b stand-in is deeper, not wider) for 2.8b (layer
    # selections mapped by depth, ranks by width), two seeds (the verdicts need n >= 2), 1.5 epochs instead of 10.
    # The seed's recipe (lr 5e-5, no warmup, 16 sequences per step) was set for 410m over 10 epochs; 1.5 epochs of it
    # are ~250 steps, where a from-scratch model would stay near the bigram line, so these small models take
    # 8 sequences per step (~500 steps) at Pythia-70m's own pretraining lr (1e-3) with a short warmup: chosen from
    # Pythia's recipe, not measured here (no GPU); every run is drawn against the bigram, which says if it learned.
    "gpu-small": SurgeryConfig(corpus="wikitext2", tokenizer="EleutherAI/pythia-410m", block=1024, seeds=(0, 1),
                               sizes={"410m": {"hidden": 512, "layers": 6, "heads": 8},
                                      "2.8b": {"hidden": 512, "layers": 12, "heads": 8}},
                               epochs=1.5, eval_blocks=None, workers=1,
                               train=TrainConfig(batch_size=8, grad_accum=1, lr=1e-3, weight_decay=0.0,
                                                 checkpoint_every_s=900, scheduler="linear", warmup_steps=50,
                                                 log_every=50)),
    "full": SurgeryConfig(corpus="wikitext2", tokenizer="EleutherAI/pythia-410m", block=1024, seeds=(0,),
                          epochs=10, eval_blocks=None, workers=1,
                          # 16 sequences per step, as micro-batch 8 x 2: 3.5x the tokens/s of 2 x 8 for 410m on an
                          # H100 (results/benchmarks/throughput-*); 2.8b as 2 x 8 (measured peak 44 GB at batch 2)
                          micro_batch={"2.8b": (2, 8)},
                          # the GPU levers on (helpers.train; compile works with the surgery modules, tests/test_train)
                          train=TrainConfig(batch_size=8, grad_accum=2, lr=5e-5, weight_decay=0.0,
                                            checkpoint_every_s=1800,           # resumable after a crash
                                            scheduler="linear", warmup_steps=0, log_every=50, compile=True,
                                            tf32=True)),
}


# ------------------------------------------------------------------------------------------------ counts at full scale
def full_count(exp: Experiment) -> dict:
    """Parameter counts of the experiment at full scale: config -> model on the meta device -> surgery -> count."""
    model = from_config(pythia_config(exp.model), device="meta")
    apply_surgery(model, exp.ops)
    return param_counts(model)


def param_table(ids=None) -> list[dict]:
    """id, name, ours, notes, status (match / explained / MISMATCH) for every experiment."""
    out = []
    for exp in get(ids or sorted(EXPERIMENTS)):
        ours = full_count(exp)[exp.counted]
        status = "match" if ours == exp.notes_params else ("explained" if exp.note else "MISMATCH")
        out.append({"id": exp.id, "name": exp.name, "model": exp.model, "surgery": exp.describe(),
                     "ours": ours, "notes": exp.notes_params, "counted": exp.counted, "status": status,
                     "note": exp.note})
    return out


def print_param_table(as_json: bool = False) -> int:
    table = param_table()
    if as_json:
        print(json.dumps(table, indent=1))
    else:
        print(f"{'id':>3}  {'name':<66} {'ours':>15} {'notes':>15}  status")
        for r in table:
            print(f"{r['id']:>3}  {r['name']:<66} {r['ours']:>15,} {r['notes']:>15,}  {r['status']}")
        for r in table:
            if r["note"]:
                print(f"  {r['id']}: {r['note']}")
        n = {s: sum(r["status"] == s for r in table) for s in ("match", "explained", "MISMATCH")}
        print(f"{n['match']} match, {n['explained']} explained, {n['MISMATCH']} mismatch")
    return 0 if all(r["status"] != "MISMATCH" for r in table) else 1


def spec_table(ids, cfg: SurgeryConfig | None = None):
    """The experiments and their parameter counts at full scale (meta device) against the notes; with a profile's
    config also what each does to that profile's stand-in (layers mapped by depth fraction, ranks scaled) and which
    experiments are the same model as another there."""
    out = frame(param_table(ids), "id")[["name", "model", "surgery", "ours", "notes", "status",
                                                          "note"]]
    if cfg is not None:
        same = same_model(cfg)
        out["stand_in"] = [stand_in(cfg, EXPERIMENTS[i]) for i in out.index]
        out["stand_in_layers"] = [layers_of(cfg, EXPERIMENTS[i].model) for i in out.index]
        out["same_model_as"] = [same.get(i, "") for i in out.index]
    return out


def check_specs(cfg: SurgeryConfig, ids) -> None:
    """Build every experiment's stand-in on the meta device with its surgery: a size that breaks a spec (a rank
    above the width, a selection past the depth) raises here, naming the experiment and the setting, before any
    training starts."""
    for exp in get(ids):
        if cfg.sizes[exp.model] is None:       # the real config: its ranks and layers are the notes' own
            continue
        conf, factor = model_config(cfg, exp.model, 256)
        try:
            apply_surgery(from_config(conf, device="meta"), stand_in_ops(cfg, exp), rank_factor=factor)
        except ValueError as e:
            setting = cfg.sizes[exp.model] or "the real config"
            raise ValueError(f"experiment {exp.id} ({exp.name}: {exp.describe()}) cannot be built with the "
                             f"{exp.model} size {setting} (scale_ranks={cfg.scale_ranks}): {e}") from None


# ------------------------------------------------------------------------------------------------ runs
def model_config(cfg: SurgeryConfig, which: str, vocab_size: int):
    """Pythia config (full) or its narrow stand-in; returns (config, rank_factor)."""
    size = cfg.sizes[which]
    full = pythia_config(which)
    if size is None:
        return pythia_config(which, vocab_size=max(vocab_size, full.vocab_size)), 1.0
    conf = pythia_config(which, hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                         num_attention_heads=size["heads"], intermediate_size=4 * size["hidden"],
                         vocab_size=vocab_size, max_position_embeddings=max(cfg.block, 64))
    return conf, rank_factor(cfg, which)


def data(cfg: SurgeryConfig):
    """The profile's tokenized train / validation blocks and their references (helpers.pretrain's one cache)."""
    return lm_data(cfg.corpus, cfg.tokenizer, cfg.block, cfg.train_docs, cfg.eval_blocks,
                   train_tokens=cfg.train_tokens, spread=cfg.spread)


def references(cfg: SurgeryConfig) -> dict:
    """The trivial references of this tokenization on the validation blocks the runs are scored on, from tables of
    the train blocks the runs train on: unigram (no context) and interpolated bigram (previous token only), nats per
    token. A trained original that does not beat the bigram line has not learned to use context."""
    return data(cfg).references


def run_config(cfg: SurgeryConfig, exp: Experiment, profile: str) -> dict:
    """What determines a run (and so its record id): the experiment's ops, model size, data, training (the
    profile is added by the results store)."""
    return {"experiment": exp.id, "surgery": exp.describe(), "stand_in": stand_in(cfg, exp), "model": exp.model,
            "size": cfg.sizes[exp.model], "scale_ranks": cfg.scale_ranks, "corpus": cfg.corpus,
            "tokenizer": cfg.tokenizer, "block": cfg.block, "epochs": cfg.epochs, "train_docs": cfg.train_docs,
            "eval_blocks": cfg.eval_blocks, "train": asdict(cfg.train), **data_sample(cfg)}


LADDER_SETTINGS = ("spread", "train_tokens")


def data_sample(cfg: SurgeryConfig) -> dict:
    """The settings added with the n-gram ladder (LADDER_SETTINGS), only where they are not their defaults: the
    records made before them keep their ids (run_config, and the regime search's key)."""
    return {k: getattr(cfg, k) for k in LADDER_SETTINGS
            if getattr(cfg, k) != SurgeryConfig.__dataclass_fields__[k].default}


def train_experiment(exp_id: int, seed: int, cfg: SurgeryConfig, device: str = "cpu", callbacks=()) -> dict:
    """Build the (stand-in) model with the experiment's surgery, train it from scratch, return the run result
    (`callbacks`: extra Trainer callbacks, e.g. a test's stop after the first steps)."""
    exp = EXPERIMENTS[exp_id]
    d = data(cfg)
    vocab, train, val = d.vocab, d.train, d.val
    conf, factor = model_config(cfg, exp.model, vocab)
    torch.manual_seed(seed)
    model = from_config(conf, device=device)
    apply_surgery(model, stand_in_ops(cfg, exp), rank_factor=factor)
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
    res = train_causal_lm(model, train, val, tcfg, device=device, seed=seed, checkpoint_dir=folder,
                          callbacks=callbacks)
    res.pop("model")
    res["metrics"].update(references(cfg))
    res["metrics"]["ngram_ce"] = {str(n): ce for n, ce in d.ladder.items()}
    res["metrics"]["ngram_seen"] = {str(n): share for n, share in d.seen.items()}
    res["metrics"]["train_tokens_available"] = len(train) * cfg.block
    res["params"] = {**param_counts(model), "full_scale": full_count(exp)[exp.counted], "notes": exp.notes_params,
                     "rank_factor": factor}
    return res


def run_experiments(run, ids, force: bool = False) -> dict:
    """Train every (experiment, seed) of `ids` under `run.cfg` through the sweep runner (a run whose record exists
    is loaded instead; force retrains), one record each; returns {(experiment name, seed): record}.

    On a CPU every run goes to a fresh process of its own with one torch thread, cfg.workers of them at a time."""
    return run_sweep(run, experiments_sweep(run, ids), run.cfg.workers, force)


def experiments_sweep(run, ids, quiet: bool = False) -> Sweep:
    """The Sweep of experiments `ids` under run.cfg, one point per experiment trained (cfg.seeds each)."""
    cfg = run.cfg
    check_specs(cfg, ids)
    # an experiment that is the same model as an earlier one at this scale is not trained again: its canonical
    # experiment is (in that one's home notebook), and tables show the duplicate as "same model as N"
    same = same_model(cfg)
    todo = sorted({same.get(e.id, e.id) for e in get(ids)})
    for e in get(ids):
        if e.id in same and not quiet:
            print(f"exp {e.id}: same model as exp {same[e.id]} at this scale ({stand_in(cfg, e)}); not trained again")
    # an experiment shared by several notebooks (the originals 1 and 8) is recorded once, in its home notebook
    points = [Point(f"exp{e.id:02d}", e.name, (e.id, cfg), run_config(cfg, e, run.profile), notebook=e.notebook)
              for e in get(todo)]
    return Sweep("runs", points, _train_job, tuple(cfg.seeds), "runs")


def sweeps(run, params: dict) -> dict[str, Sweep]:
    """The notebook's sweeps at run.cfg (helpers.points): its experiments (params: its parameters cell)."""
    return {"runs": experiments_sweep(run, params["EXPERIMENTS"], quiet=True)}


def _train_job(exp_id: int, cfg: SurgeryConfig, seed: int, device: str) -> dict:
    return train_experiment(exp_id, seed, cfg, device)


def load_reference(run):
    """The original (experiment 1) and no attention (experiment 6) as notebook 01 recorded them with the same
    profile, model size, data and training config, {(variant, seed): record} (empty if 01 has not run); they join
    the run's records, so notebooks 02/03 report deltas and retained benefit without training them again."""
    recs = [find_record(e.notebook, e.name, {"profile": run.profile, **run_config(run.cfg, e, run.profile)}, s)
            for e in get((1, 6)) for s in run.cfg.seeds]
    recs = [r for r in recs if r is not None]
    run.collect(*recs)
    return keyed(*recs)


# ------------------------------------------------------------------------------------------------ plan
def full_plan(nb: str, b: dict, cfg=None, bf16: bool = True) -> NotebookPlan:
    """The full profile's plan of one of notebooks 01-03: each Pythia size it trains, its runs x seeds x tokens."""
    cfg = cfg or PROFILES["full"]
    mem, work, runs = [], [], {}
    for size in ("410m", "2.8b"):
        exps = [e for e in EXPERIMENTS.values() if e.notebook == nb and e.model == size]
        if not exps:
            continue
        bs, accum = (cfg.micro_batch or {}).get(size, (cfg.train.batch_size, cfg.train.grad_accum))
        conf = model_config(cfg, size, 50304)[0]          # Pythia's, or the profile's stand-in for it
        name = f"pythia-{size}" + ("" if cfg.sizes[size] is None else
                                   f" stand-in {conf.hidden_size} x {conf.num_hidden_layers}")
        plan = training_plan(name, conf, bs, cfg.block, precision_for("auto", True, bf16),
                             checkpointing=bool(cfg.train.gradient_checkpointing))
        mem.append(plan)
        if cfg.epochs:
            per_run, length = cfg.epochs * WIKITEXT2_TRAIN_TOKENS, f"{cfg.epochs} epochs of " \
                f"~{WIKITEXT2_TRAIN_TOKENS / 1e6:.1f}M tokens"
        else:
            per_run = cfg.train.max_steps * bs * accum * cfg.block
            length = f"{cfg.train.max_steps} steps of {bs * accum} x {cfg.block} tokens"
        tokens = len(exps) * len(cfg.seeds) * per_run
        case = ("pythia-410m train sdpa" if (size, bs) == ("410m", 8)
                else f"pythia-{size} train sdpa, notebook batch 2")
        what = f"{len(exps)} {name} runs x {len(cfg.seeds)} seed(s) x {length}, micro-batch {bs} x {accum}"
        work.append((what, train_seconds(b, case, plan.params, tokens)))
        runs[what] = len(exps) * len(cfg.seeds)
    small = any(cfg.sizes.values())
    return NotebookPlan(nb, mem, work, b.get("gpu"),
                        "low-rank variants are timed as the original (their matmuls are smaller: an upper bound)"
                        + ("; stand-ins at the MFU measured for the real Pythia sizes (smaller models reach less: "
                           "optimistic)"
                           if small else ""), runs=runs)
