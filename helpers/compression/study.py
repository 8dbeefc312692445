"""Notebook 04: low-rank compression of a pretrained model, seed 001 done right.

local = SmolLM2-135M-Instruct (offline asset), calibrated on the English train split, evaluated on held-out English
(test split) and held-out WordNet-definition chats (answer tokens only). full = Open-Orca/Mistral-7B-OpenOrca,
calibrated on the notes' own split of openaccess-ai-collective/oo-gpt4-filtered (train_test_split(test_size=100000,
seed=42)) and evaluated on WikiText-2 test: the notes evaluated on OpenOrca rows, which the model was very likely
fine-tuned on (eval_corpus="oo-gpt4" reproduces that). gpu-small = SmolLM2-360M on WikiText-2 (train / test), sized
for one 16 GB GPU and Colab's RAM. The GPU profiles' plan is helpers.compression_plan.

Sections (each returns a result dict for the run record):
  a. exp3         the notes' experiment 3: one middle layer's MLP at rank 16 by plain SVD, teacher vs student + CI
  b. sweep        svd / whiten / scaled at several parameter reductions, for MLP, attention and both
  c. fitting      closed form vs the seed's Adam fit on the same captured activations and rank; the one-prompt trap
  d. sensitivity  loss increase when one layer at a time is compressed (attention and MLP separately)
  e. healing      a short fine-tune of the compressed model's factors and the loss it recovers
  f. whitening    whiten's centring policies (SVD-LLM's uncentred, centred, centred except v_proj) over
                  calibration draws on both held-out sets: the measurement that chose `whitening`'s default
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from datasets import load_dataset

from .. import hub
from ..data import (
    definition_chats,
    ensure_chat_template,
    instruction_chats,
    lm_blocks,
    load_corpus,
    load_pretrained,
    load_tokenizer,
)
from ..evaluate import lm_loss
from ..layers import parse_layers
from ..models import FACTORIZATIONS, LLAMA_LINEARS, count_params
from ..provenance import track
from ..results import load_or_run
from ..stats import paired_bootstrap
from ..train import TrainConfig, model_dtype, train_causal_lm
from . import factorize as C
from . import whitening as W
from .plan import full_plan  # noqa: F401  (the family registry reads each study's full_plan)


@dataclass
class CompressionConfig:
    model: str = "smollm2"
    calib_corpus: str = "en"
    calib_blocks: int = 32
    block: int = 256
    eval_corpus: str = "en"
    eval_blocks: int = 24                  # held-out English blocks for the headline comparisons
    chats: int = 64                        # held-out WordNet-definition chats (0: skip)
    # with OpenOrca calibration: this many held-out OpenOrca rows as a second, labelled set in the model's chat
    # format (system prompt included; loss on the response). Rows the OpenOrca model was likely tuned on, so they
    # are never the headline set (0: skip)
    openorca_rows: int | None = None
    exp3_layer: int | None = None          # None: the layer at 17/32 of the depth (the notes' layer 17 of 32)
    exp3_rank: int = 16
    methods: tuple = ("svd", "whiten", "scaled")
    reductions: tuple = (0.1, 0.2, 0.3, 0.4)
    groups: tuple = ("mlp", "attention", "both")
    sweep_eval_blocks: int = 12              # 12 x 256 tokens: enough sequences for a paired bootstrap
    fit_module: str = "gate"
    fit_rank: int = 64
    fit_steps: tuple = (100, 1000, 10_000)
    fit_lr: float = 1e-3
    fit_tokens: int = 4096
    trap_tokens: int = 82                  # the notes' one prompt
    trap_rank: int = 128
    layers: str = "all"                    # layers the sweep, the sensitivity map and the healing touch
    sens_rank: int = 16                    # one layer's attention (q, k, v, o) or MLP at this rank, plain SVD
    sens_eval_blocks: int = 8
    heal_reduction: float = 0.2
    heal_method: str = "whiten"
    heal: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=30, batch_size=4, lr=2e-4,
                                                                  scheduler="constant", log_every=10,
                                                                  progress=False))
    heal_block: int = 128
    heal_seeds: tuple | None = None        # healing's training seeds, each with its control (None: run.seed, +1)
    # whiten's centring (compress.CENTERINGS) in sections b, c and e: chosen by section f's records (README)
    whitening: str = C.DEFAULT_CENTER
    center_policies: tuple = C.CENTERINGS  # section f: every policy, each calibrated on center_draws disjoint draws
    center_draws: int = 3
    center_reductions: tuple = (0.2, 0.4)

    def __post_init__(self):
        if isinstance(self.heal, dict):
            self.heal = TrainConfig(**self.heal)
        bad = [m for m in self.methods if m not in FACTORIZATIONS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; allowed: {', '.join(FACTORIZATIONS)}")
        bad = [g for g in self.groups if g not in ("mlp", "attention", "both")]
        if bad:
            raise ValueError(f"unknown group(s) {bad}; allowed: mlp, attention, both")
        if any(not 0 < r < 1 for r in self.reductions):
            raise ValueError(f"reductions must lie in (0, 1), got {self.reductions}")
        for p in (self.whitening, *self.center_policies):
            C.centers(p, "")                   # an unknown centring fails here, naming the allowed ones
        if self.fit_module not in LLAMA_LINEARS or self.fit_module == "lm_head":
            raise ValueError(f"fit_module must be a block Linear ({', '.join(list(LLAMA_LINEARS)[:-1])}), "
                             f"got '{self.fit_module}'")


PROFILES = {
    "tiny": CompressionConfig(calib_blocks=2, block=32, eval_blocks=2, chats=4, methods=("svd", "whiten"), layers="0-1",
                              reductions=(0.2,), groups=("both",), sweep_eval_blocks=1, fit_rank=8,
                              fit_steps=(5, 20), fit_tokens=256, trap_tokens=16, trap_rank=24, sens_eval_blocks=1,
                              heal=TrainConfig(max_steps=2, batch_size=2, lr=1e-4, scheduler="constant",
                                               log_every=1, progress=False), heal_block=32,
                              center_policies=("none", "except-v"), center_draws=2, center_reductions=(0.2,)),
    "local": CompressionConfig(fit_steps=(100, 300, 1000), fit_tokens=2048),   # 10k Adam steps: benchmarks/
    # gpu-small: one 16 GB GPU and ~12 GB of host RAM (Colab): the largest SmolLM2 (a Llama) whose float64
    # statistics fit that RAM twice over (section f holds two draws): SmolLM2-360M (2.4 GB per draw; SmolLM2-1.7B
    # would need 15 GB per draw, a 1.1B TinyLlama 7.8 GB), calibrated on WikiText-2 train and scored on its test split
    # at the full profile's sequence length, healed with fp16 mixed precision
    "gpu-small": CompressionConfig(model="HuggingFaceTB/SmolLM2-360M", calib_corpus="wikitext2",
                                   eval_corpus="wikitext2", calib_blocks=128, block=1024, eval_blocks=128, chats=0,
                                   sweep_eval_blocks=32, sens_eval_blocks=8, fit_tokens=8192, heal_block=1024,
                                   heal=TrainConfig(max_steps=200, batch_size=2, grad_accum=2, lr=1e-4,
                                                    scheduler="cosine", warmup_steps=20, log_every=20,
                                                    gradient_checkpointing=True)),
    # full: calibrated on the notes' OpenOrca split, evaluated on WikiText-2 test (text the OpenOrca model was not
    # tuned on, and the set SVD-LLM reports), not on OpenOrca rows
    "full": CompressionConfig(model="Open-Orca/Mistral-7B-OpenOrca", calib_corpus="oo-gpt4", eval_corpus="wikitext2",
                              calib_blocks=256, block=1024, eval_blocks=256, chats=0, openorca_rows=256,
                              sweep_eval_blocks=64, sens_eval_blocks=16, fit_tokens=16384, heal_block=1024,
                              center_draws=2, center_reductions=(0.2,),  # 2 x 3 x 32 layers of whiten bases: 0.6 h
                              # micro-batch 1 x 4 and checkpointing: see full_plan below
                              heal=TrainConfig(max_steps=200, batch_size=1, grad_accum=4, lr=1e-4, scheduler="cosine",
                                               warmup_steps=20, log_every=20, gradient_checkpointing=True)),
}


# ------------------------------------------------------------------------------------------------ data
def load(cfg: CompressionConfig, device: str = "cpu"):
    """Teacher model, tokenizer, calibration batches, held-out English blocks and WordNet chats."""

    tok = load_tokenizer("smollm2" if cfg.model == "smollm2" else cfg.model)
    # bf16 on a GPU (a 7B teacher is 14 GB instead of 29 GB in fp32); fp32 on the CPU, where bf16 matmuls are slow
    model = load_pretrained(cfg.model, dtype=model_dtype(device)).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    calib_split, eval_split, orca_split = _splits(cfg)
    calib = lm_blocks(calib_split, tok, cfg.block, max_blocks=cfg.calib_blocks)
    held = lm_blocks(eval_split, tok, cfg.block, max_blocks=cfg.eval_blocks)
    chats = definition_chats(load_corpus("wordnet")["test"], tok, cfg.chats) if cfg.chats else []
    orca = []
    if orca_split is not None:
        # OpenOrca's models speak ChatML (their model card): installed only where the tokenizer ships no template
        ensure_chat_template(tok, None if getattr(tok, "chat_template", None) else "chatml")
        orca = instruction_chats(orca_split, tok, cfg.openorca_rows, cfg.block)
    batches = W.batches_of(calib)
    return {"model": model, "tok": tok, "calib_split": calib_split, "calib": calib, "calib_batches": batches,
            "held": held, "chats": chats, "openorca": orca}


OPENORCA_SET = "openorca held-out (likely in its tuning data)"


def _splits(cfg: CompressionConfig):
    """(calibration split, evaluation split, OpenOrca held-out rows for the second set or None)."""

    if cfg.calib_corpus == "oo-gpt4":
        ds = hub.call("oo-gpt4-filtered", load_dataset, "openaccess-ai-collective/oo-gpt4-filtered", split="train")
        parts = ds.train_test_split(test_size=100_000, seed=42)      # the notes' own split (exp 4)
        to_text = lambda d: d.map(lambda b: {"text": [f"{q}\n{r}" for q, r in zip(b["question"], b["response"])]},  # noqa: E731
                                  batched=True)
        second = parts["test"] if cfg.openorca_rows else None
        if cfg.eval_corpus == "oo-gpt4":     # the notes' evaluation: rows the OpenOrca model was likely tuned on
            return to_text(parts["train"]), to_text(parts["test"]), second
        return to_text(parts["train"]), load_corpus(cfg.eval_corpus)["test"], second
    return load_corpus(cfg.calib_corpus)["train"], load_corpus(cfg.eval_corpus)["test"], None


block_modules = C.block_modules        # the study's sections select their Linears by it (as section f does)


def bases(data, cfg: CompressionConfig, method: str, stats: dict | None = None) -> "C.Bases":
    """Decompositions of the block Linears in cfg.layers, computed once per method and kept in `data` (svd and
    whiten are reused by several sections; others are built on demand and not kept)."""

    memo = data.setdefault("bases", {})
    if method in memo:
        return memo[method]
    made = C.Bases(block_modules(data["model"], layers=cfg.layers), method, stats, center=cfg.whitening)
    if method in ("svd", "whiten"):
        memo[method] = made
    return made


def middle_layer(model, cfg: CompressionConfig) -> int:
    n = model.config.num_hidden_layers
    return cfg.exp3_layer if cfg.exp3_layer is not None else round(17 / 32 * n)


def heldout_losses(model, data, n_blocks: int | None = None, device: str = "cpu") -> dict:
    held = data["held"] if n_blocks is None else data["held"].select(range(min(n_blocks, len(data["held"]))))
    out = {"english": lm_loss(model, held, batch_size=4, device=device, per_sequence=True)}
    if data["chats"] and n_blocks is None:
        out["chats"] = lm_loss(model, data["chats"], batch_size=8, device=device, per_sequence=True)
    if data.get("openorca") and n_blocks is None:
        out[OPENORCA_SET] = lm_loss(model, data["openorca"], batch_size=4, device=device, per_sequence=True)
    return out


def teacher_eval(data, n_blocks: int, device: str = "cpu") -> dict:
    """The teacher's English evaluation (loss and per-sequence sums) on the first n_blocks held-out blocks, computed
    once per size and kept in `data` (the sweep, the sensitivity map and the healing all compare against it)."""
    memo = data.setdefault("teacher_eval", {})
    if n_blocks not in memo:
        memo[n_blocks] = heldout_losses(data["model"], data, n_blocks, device)["english"]
    return memo[n_blocks]


def teacher_loss(data, n_blocks: int, device: str = "cpu") -> float:
    return teacher_eval(data, n_blocks, device)["loss"]


def versus_teacher(data, model, n_blocks: int, device: str = "cpu") -> dict:
    """A student's held-out English loss against the teacher's on the same blocks: the difference with a paired
    bootstrap interval over sequences (delta, lo, hi) and "tie" when the interval contains 0."""

    student = heldout_losses(model, data, n_blocks, device)["english"]
    b = paired_bootstrap(teacher_eval(data, n_blocks, device), student)
    return {"loss": student["loss"], "delta": b["delta"], "lo": b["lo"], "hi": b["hi"],
            "tie": bool(b["lo"] <= 0 <= b["hi"])}


def compare(teacher: dict, student: dict) -> dict:
    """Teacher vs student per evaluation set: losses, perplexities and the bootstrap CI of the difference."""

    out = {}
    for name in teacher:
        b = paired_bootstrap(teacher[name], student[name])
        out[name] = {"teacher_loss": teacher[name]["loss"], "student_loss": student[name]["loss"],
                     "teacher_ppl": teacher[name]["ppl"], "student_ppl": student[name]["ppl"], **b}
    return out


# ------------------------------------------------------------------------------------------------ a. exp 3
def measure_exp3(data, cfg: CompressionConfig, teacher: dict, device: str = "cpu") -> dict:
    model = data["model"]
    layer = middle_layer(model, cfg)
    mods = block_modules(model, ("mlp",), str(layer))
    bases = C.Bases(mods, "svd")
    with C.swapped(model, {p: bases.module(p, cfg.exp3_rank) for p in mods}):
        n_params = count_params(model)
        student = heldout_losses(model, data, device=device)
    res = compare(teacher, student)
    metrics = {f"{k}.{m}": v for k, d in res.items() for m, v in d.items()}
    metrics.update(layer=layer, rank=cfg.exp3_rank, params_after=n_params)
    return {"metrics": metrics, "table": res, "params": {"total_after": n_params}}


# ------------------------------------------------------------------------------------------------ b. sweep
def measure_sweep(data, cfg: CompressionConfig, stats: dict, device: str = "cpu") -> dict:
    """Loss on held-out English for every (method, group, reduction); the reduction is of the targeted block
    Linears' parameters (each matrix keeps 1 - reduction of its parameters)."""

    model = data["model"]
    base = teacher_loss(data, cfg.sweep_eval_blocks, device)
    total = count_params(model)
    rows = []
    mods = block_modules(model, layers=cfg.layers)
    for method in cfg.methods:
        made = bases(data, cfg, method, stats)
        for group in cfg.groups:
            names = ("attention", "mlp") if group == "both" else (group,)
            for red in cfg.reductions:
                ranks = C.resolve_plan(model, [C.Target(names, cfg.layers, ratio=1 - red)])
                new = {p: made.module(p, r) for p, r in ranks.items()}
                removed = sum(mods[p].weight.numel() - count_params(new[p]) for p in new)
                with C.swapped(model, new):
                    v = versus_teacher(data, model, cfg.sweep_eval_blocks, device)
                rows.append({"method": method, "group": group, "reduction": red, "params": total - removed,
                             "params_removed": removed, **v})
    return {"rows": rows, "teacher_loss": base, "teacher_params": total}


# ------------------------------------------------------------------------------------------------ c. fitting
def measure_fitting(data, cfg: CompressionConfig, device: str = "cpu") -> dict:
    """Closed form (whiten) vs the seed's Adam fit on the same captured inputs of one middle-layer Linear, at the
    same rank: held-out MSE and wall time; then the one-prompt trap (rank above the number of tokens)."""

    model = data["model"]
    layer = middle_layer(model, cfg)
    path = f"model.layers.{layer}.{C.MODULES[cfg.fit_module]}"
    lin = model.get_submodule(path)
    x_cal = C.capture_inputs(model, data["calib_batches"], path, cfg.fit_tokens, device).to(torch.float32)
    held_batches = [{"input_ids": torch.tensor([data["held"][i]["input_ids"]])} for i in range(len(data["held"]))]
    x_held = C.capture_inputs(model, held_batches, path, cfg.fit_tokens, device)
    lin32 = torch.nn.Linear(lin.in_features, lin.out_features, bias=lin.bias is not None)
    lin32.load_state_dict({k: v.float() for k, v in lin.state_dict().items()})
    stats = C.InputStats(lin.in_features)
    stats.update(x_cal)
    t0 = time.perf_counter()
    closed = C.factorize(lin32, cfg.fit_rank, "whiten", stats, center=C.centers(cfg.whitening, path))
    closed_s = time.perf_counter() - t0
    adam = C.fit_adam(lin32, x_cal, cfg.fit_rank, steps=max(cfg.fit_steps), lr=cfg.fit_lr,
                      report_at=tuple(cfg.fit_steps), held_out=x_held)
    svd = C.factorize(lin32, cfg.fit_rank, "svd")
    out = {"path": path, "rank": cfg.fit_rank, "calib_tokens": x_cal.shape[0], "heldout_tokens": x_held.shape[0],
           "closed_form": {"wall_s": closed_s, "calib_mse": C.output_mse(closed.module, lin32, x_cal),
                           "heldout_mse": C.output_mse(closed.module, lin32, x_held)},
           "svd": {"calib_mse": C.output_mse(svd.module, lin32, x_cal),
                   "heldout_mse": C.output_mse(svd.module, lin32, x_held)},
           "adam": adam["marks"], "adam_wall_s": adam["wall_s"]}
    # the trap: fit on one short "prompt" with a rank above its token count
    x_trap = x_cal[: cfg.trap_tokens]
    st = C.InputStats(lin.in_features)
    st.update(x_trap)
    trap = C.factorize(lin32, cfg.trap_rank, "whiten", st, center=False)
    full = C.factorize(lin32, cfg.trap_rank, "whiten", stats, center=C.centers(cfg.whitening, path))
    out["trap"] = {"tokens": cfg.trap_tokens, "rank": cfg.trap_rank, "warnings": trap.warnings,
                   "calib_mse": C.output_mse(trap.module, lin32, x_trap),
                   "heldout_mse": C.output_mse(trap.module, lin32, x_held),
                   "full_calib_heldout_mse": C.output_mse(full.module, lin32, x_held),
                   "signal": float((lin32(x_held).detach() ** 2).mean())}
    return out


# ------------------------------------------------------------------------------------------------ d. sensitivity
def measure_sensitivity(data, cfg: CompressionConfig, device: str = "cpu") -> dict:
    """Loss increase on held-out English when one layer's attention (q, k, v, o) or MLP (gate, up, down) alone is
    replaced by plain-SVD factors of rank sens_rank (the notes' method and rank)."""

    model = data["model"]
    base = teacher_loss(data, cfg.sens_eval_blocks, device)

    made = bases(data, cfg, "svd")
    grid = {"attention": [], "mlp": []}
    layers = parse_layers(cfg.layers, model.config.num_hidden_layers)
    for group in grid:
        for layer in layers:
            mods = block_modules(model, (group,), str(layer))
            with C.swapped(model, {p: made.module(p, cfg.sens_rank) for p in mods}):
                grid[group].append(versus_teacher(data, model, cfg.sens_eval_blocks, device))
    return {"delta": grid, "layers": layers, "teacher_loss": base, "rank": cfg.sens_rank}


# ------------------------------------------------------------------------------------------------ e. healing
def measure_healing(data, cfg: CompressionConfig, stats: dict, device: str = "cpu", seed: int = 0,
                    control: bool = False) -> dict:
    """Compress every block Linear by heal_reduction with heal_method, then fine-tune only the low-rank factors on
    the calibration (train) text for a few steps: how much of the loss increase comes back?

    control=True is the control arm: the uncompressed teacher, the same Linears made trainable (full rank), the same
    tokens, steps and seed. Its gain is what fine-tuning on this text does without any compression (domain
    adaptation), so only the student's gain beyond it counts as recovery."""
    base = teacher_loss(data, cfg.sweep_eval_blocks, device)
    student = copy.deepcopy(data["model"])
    ranks = C.resolve_plan(student, [C.Target(("attention", "mlp"), cfg.layers, ratio=1 - cfg.heal_reduction)])
    params_before = count_params(student)
    if control:
        for path in ranks:
            student.get_submodule(path).weight.requires_grad_(True)
    else:
        made = bases(data, cfg, cfg.heal_method, stats)
        C.replace(student, {p: made.module(p, r) for p, r in ranks.items()})
    params_after = count_params(student)
    # the control starts as the teacher itself: its loss is the teacher's, already evaluated
    before = base if control else heldout_losses(student, data, cfg.sweep_eval_blocks, device)["english"]["loss"]
    train = lm_blocks(data["calib_split"], data["tok"], cfg.heal_block,
                      max_blocks=cfg.heal.max_steps * cfg.heal.batch_size * cfg.heal.grad_accum)
    teacher = data["model"]
    if str(device).startswith("cuda"):      # the teacher is not needed while healing: give its GPU memory to AdamW
        teacher.to("cpu")
    try:
        res = train_causal_lm(student, train, None, cfg.heal, device=device, seed=seed)
    finally:
        teacher.to(device)
    after = heldout_losses(res["model"], data, cfg.sweep_eval_blocks, device)["english"]["loss"]
    trainable = count_params(student, trainable_only=True)
    return {"metrics": {"teacher_loss": base, "compressed_loss": before, "healed_loss": after,
                        "recovered_fraction": (before - after) / max(before - base, 1e-9) if not control else None,
                        "control": control, "params_before": params_before, "params_after": params_after,
                        "trainable": trainable, "steps": res["metrics"]["steps"],
                        "tokens": res["metrics"]["tokens"]},
            "curves": {"train_loss": res["curves"]["train_loss"]}, "provenance": res["provenance"]}


# ------------------------------------------------------------------------------------------------ sections
class Prepared(dict):
    """The data every section reads, loaded on first use: a rerun whose sections are all recorded never loads
    the teacher or calibrates (keys read with [] trigger it; .get() does not)."""

    def __init__(self, run):
        super().__init__()
        self.run, self.loaded = run, False

    def __missing__(self, key):
        if self.loaded:
            raise KeyError(key)
        self.loaded = True
        self.update(_prepare(self.run))
        return self[key]


def prepare(run) -> Prepared:
    """Teacher and data, every block Linear's calibration statistics, the teacher's losses: loaded when a section
    first needs them (not at all when every section is recorded)."""
    return Prepared(run)


def _prepare(run) -> dict:
    """Load the teacher and data, calibrate every block Linear's input statistics, evaluate the teacher."""

    data = load(run.cfg, run.device)
    with track(run.device) as t:
        data["stats"] = C.calibrate(data["model"], data["calib_batches"], block_modules(data["model"]), run.device)
        data["teacher"] = heldout_losses(data["model"], data, device=run.device)
    data["calibration_s"] = t.wall_s
    print(f"calibration: {next(iter(data['stats'].values())).n:,} tokens, {len(data['stats'])} Linears, "
          f"{t.wall_s:.0f} s")
    return data


def exp3(run, data, force: bool = False) -> dict:
    """a. The notes' experiment 3: one middle layer's MLP at rank exp3_rank by plain SVD, teacher vs student with a
    paired bootstrap interval per evaluation set."""

    def compute():
        with track(run.device) as t:
            a = measure_exp3(data, run.cfg, data["teacher"], run.device)
        rows = [{"set": name, **r} for name, r in a["table"].items()]
        return {"metrics": {k: a["metrics"][k] for k in ("layer", "rank", "params_after")},
                "tables": {"heldout": rows}, "params": a["params"], "provenance": t.as_dict()}

    return load_or_run(run, "a_exp3", "svd-mlp-one-layer", compute, force=force)


def method_sweep(run, data, force: bool = False) -> dict:
    """b. Every (method, group, reduction) on held-out English (rows: params, loss, delta to the teacher)."""

    def compute():
        with track(run.device) as t:
            b = measure_sweep(data, run.cfg, data["stats"], run.device)
        return {"metrics": {"teacher_loss": b["teacher_loss"], "teacher_params": b["teacher_params"]},
                "tables": {"rows": b["rows"]}, "provenance": t.as_dict()}

    return load_or_run(run, "b_sweep", "methods-x-reductions", compute, force=force)


def fitting(run, data, force: bool = False) -> dict:
    """c. Closed form vs the seed's Adam fit (rows per fit), and the one-prompt trap (metrics trap.*)."""

    return load_or_run(run, "c_fitting", f"{run.cfg.fit_module}-rank{run.cfg.fit_rank}",
                       lambda: _fitting(run, data), force=force)


def _fitting(run, data) -> dict:
    with track(run.device) as t:
        c = measure_fitting(data, run.cfg, run.device)
    rows = [{"fit": "closed form (whiten)", "steps": None, **c["closed_form"]},
            {"fit": "plain SVD", "steps": None, "wall_s": None, **c["svd"]},
            *[{"fit": "Adam", "steps": int(k), **v} for k, v in c["adam"].items()]]
    metrics = {"path": c["path"], "rank": c["rank"], "calib_tokens": c["calib_tokens"],
               "heldout_tokens": c["heldout_tokens"], "adam_wall_s": c["adam_wall_s"],
               **{f"trap.{k}": v for k, v in c["trap"].items() if k != "warnings"}}
    return {"metrics": metrics, "tables": {"fit": rows, "trap_warnings": [{"warning": w} for w in
                                                                          c["trap"]["warnings"]]},
            "provenance": t.as_dict()}


def sensitivity(run, data, force: bool = False) -> dict:
    """d. Loss increase when one layer's attention or MLP alone is compressed (rows: layer, attention, mlp)."""

    def compute():
        with track(run.device) as t:
            d = measure_sensitivity(data, run.cfg, run.device)
        rows = [{"layer": layer, **{f"{g}{suffix}": v[key] for g, v in (("attention", a), ("mlp", m))
                                    for suffix, key in (("", "delta"), ("_lo", "lo"), ("_hi", "hi"))}}
                for layer, a, m in zip(d["layers"], d["delta"]["attention"], d["delta"]["mlp"])]
        return {"metrics": {"teacher_loss": d["teacher_loss"], "rank": d["rank"]}, "tables": {"layers": rows},
                "provenance": t.as_dict()}

    return load_or_run(run, "d_sensitivity", f"svd-rank{run.cfg.sens_rank}-per-layer", compute, force=force)


def healing(run, data, force: bool = False) -> dict:
    """e. A short fine-tune of the compressed model's factors and the share of the loss increase it recovers, over
    training seeds (cfg.heal_seeds), each beside its control arm (the teacher fine-tuned the same way):
    {(variant, seed): record}."""
    cfg, out = run.cfg, {}
    for seed in cfg.heal_seeds or (run.seed, run.seed + 1):
        r = run.with_seed(seed)
        out.update(load_or_run(r, "e_healing", f"{cfg.heal_method}-{int(cfg.heal_reduction * 100)}pct",
                               lambda s=seed: measure_healing(data, cfg, data["stats"], run.device, s), force=force))
        out.update(load_or_run(r, "e_healing", "teacher-control",
                               lambda s=seed: measure_healing(data, cfg, data["stats"], run.device, s, control=True),
                               force=force))
    return out


def whitening(run, data, force: bool = False) -> dict:
    """f. whiten's centring policies, a record per calibration draw (its seed; W.draw_stats), on both held-out sets:
    {(variant, draw): record}, keyed by what determines it (not by `whitening`, the default it chooses)."""
    key, out = {k: getattr(run.cfg, k) for k in W.DETERMINED_BY}, {}
    for draw in range(run.cfg.center_draws):
        out.update(load_or_run(run.with_seed(draw), "f_whitening", "centring-policies",
                               lambda d=draw: _whitening(run, data, d), config=key, force=force))
    return out


def _whitening(run, data, draw: int) -> dict:
    with track(run.device) as t:
        res = W.measure_draw(data, run.cfg, draw, lambda m: heldout_losses(m, data, device=run.device), run.device)
    return {**res, "provenance": t.as_dict()}
