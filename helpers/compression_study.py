"""Notebook 04: low-rank compression of a pretrained model, seed 001 done right.

local = SmolLM2-135M-Instruct (offline asset), calibrated on the English train split, evaluated on held-out English
(test split) and held-out WordNet-definition chats (answer tokens only). full = Open-Orca/Mistral-7B-OpenOrca,
calibrated on the notes' own split of openaccess-ai-collective/oo-gpt4-filtered (train_test_split(test_size=100000,
seed=42)) and evaluated on WikiText-2 test: the notes evaluated on OpenOrca rows, which the model was very likely
fine-tuned on (eval_corpus="oo-gpt4" reproduces that).

Sections (each returns a result dict for the run record):
  a. exp3         the notes' experiment 3: one middle layer's MLP at rank 16 by plain SVD, teacher vs student + CI
  b. sweep        svd / whiten / scaled at several parameter reductions, for MLP, attention and both
  c. fitting      closed form vs the seed's Adam fit on the same captured activations and rank; the one-prompt trap
  d. sensitivity  loss increase when one layer at a time is compressed (attention and MLP separately)
  e. healing      a short fine-tune of the compressed model's factors and the loss it recovers
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import time
from dataclasses import dataclass, field

if TYPE_CHECKING:
    from . import compress as C

from .models import FACTORIZATIONS, LLAMA_LINEARS
from .train import TrainConfig

NOTEBOOK = "04_lowrank_compression"
TITLE = "Low-rank compression of a pretrained model (seed 001)"
NOTES = {  # seed 001's own numbers, for the tables (REFERENCE.md section 2)
    "exp3_teacher_1k": 2.29794, "exp3_student_1k": 2.29538, "exp3_teacher_100k": 2.33504,
    "exp3_student_100k": 2.33335, "exp2_train_mse": 165.7, "exp2_val_mse": 246.6,
    "svd_llm_llama7b_ppl_20pct": {"svd": 20061, "asvd": 11.14, "svd-llm": 7.94, "dense": 5.68},
}


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
        if self.fit_module not in LLAMA_LINEARS or self.fit_module == "lm_head":
            raise ValueError(f"fit_module must be a block Linear ({', '.join(list(LLAMA_LINEARS)[:-1])}), "
                             f"got '{self.fit_module}'")


PROFILES = {
    "tiny": CompressionConfig(calib_blocks=2, block=32, eval_blocks=2, chats=4, methods=("svd", "whiten"), layers="0-1",
                              reductions=(0.2,), groups=("both",), sweep_eval_blocks=1, fit_rank=8,
                              fit_steps=(5, 20), fit_tokens=256, trap_tokens=16, trap_rank=24, sens_eval_blocks=1,
                              heal=TrainConfig(max_steps=2, batch_size=2, lr=1e-4, scheduler="constant",
                                               log_every=1, progress=False), heal_block=32),
    "local": CompressionConfig(fit_steps=(100, 300, 1000), fit_tokens=2048),   # 10k Adam steps: benchmarks/
    # full: calibrated on the notes' OpenOrca split, evaluated on WikiText-2 test (text the OpenOrca model was not
    # tuned on, and the set SVD-LLM reports), not on OpenOrca rows
    "full": CompressionConfig(model="Open-Orca/Mistral-7B-OpenOrca", calib_corpus="oo-gpt4", eval_corpus="wikitext2",
                              calib_blocks=256, block=1024, eval_blocks=256, chats=0, openorca_rows=256,
                              sweep_eval_blocks=64,
                              sens_eval_blocks=16, fit_tokens=16384, heal_block=1024,
                              # micro-batch 1 x 4 and checkpointing: see helpers/fullplan.py's plan for 04
                              heal=TrainConfig(max_steps=200, batch_size=1, grad_accum=4, lr=1e-4, scheduler="cosine",
                                               warmup_steps=20, log_every=20, gradient_checkpointing=True)),
}


# ------------------------------------------------------------------------------------------------ data
def load(cfg: CompressionConfig, device: str = "cpu"):
    """Teacher model, tokenizer, calibration batches, held-out English blocks and WordNet chats."""
    from .data import definition_chats, instruction_chats, lm_blocks, load_corpus, load_pretrained, load_tokenizer
    from .sft import ensure_chat_template
    from .train import lm_collator

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
    batches = [lm_collator([calib[j] for j in range(i, min(i + 4, len(calib)))]) for i in range(0, len(calib), 4)]
    return {"model": model, "tok": tok, "calib_split": calib_split, "calib": calib, "calib_batches": batches,
            "held": held, "chats": chats, "openorca": orca}


def model_dtype(device: str):
    import torch

    from .train import bf16_available

    return torch.bfloat16 if str(device).startswith("cuda") and bf16_available(device) else torch.float32


OPENORCA_SET = "openorca held-out (likely in its tuning data)"


def _splits(cfg: CompressionConfig):
    """(calibration split, evaluation split, OpenOrca held-out rows for the second set or None)."""
    from . import hub
    from .data import load_corpus

    if cfg.calib_corpus == "oo-gpt4":
        from datasets import load_dataset

        ds = hub.call("oo-gpt4-filtered", load_dataset, "openaccess-ai-collective/oo-gpt4-filtered", split="train")
        parts = ds.train_test_split(test_size=100_000, seed=42)      # the notes' own split (exp 4)
        to_text = lambda d: d.map(lambda b: {"text": [f"{q}\n{r}" for q, r in zip(b["question"], b["response"])]},  # noqa: E731
                                  batched=True)
        second = parts["test"] if cfg.openorca_rows else None
        if cfg.eval_corpus == "oo-gpt4":     # the notes' evaluation: rows the OpenOrca model was likely tuned on
            return to_text(parts["train"]), to_text(parts["test"]), second
        return to_text(parts["train"]), load_corpus(cfg.eval_corpus)["test"], second
    return load_corpus(cfg.calib_corpus)["train"], load_corpus(cfg.eval_corpus)["test"], None


def block_modules(model, groups=("attention", "mlp"), layers: str = "all") -> dict:
    from . import compress as C

    return {p: model.get_submodule(p) for p in C.resolve_plan(model, [C.Target(tuple(groups), layers, rank=1)])}


def bases(data, cfg: CompressionConfig, method: str, stats: dict | None = None) -> "C.Bases":
    """Decompositions of the block Linears in cfg.layers, computed once per method and kept in `data` (svd and
    whiten are reused by several sections; others are built on demand and not kept)."""
    from . import compress as C

    memo = data.setdefault("bases", {})
    if method in memo:
        return memo[method]
    made = C.Bases(block_modules(data["model"], layers=cfg.layers), method, stats)
    if method in ("svd", "whiten"):
        memo[method] = made
    return made


def middle_layer(model, cfg: CompressionConfig) -> int:
    n = model.config.num_hidden_layers
    return cfg.exp3_layer if cfg.exp3_layer is not None else round(17 / 32 * n)


def evaluate(model, data, n_blocks: int | None = None, device: str = "cpu") -> dict:
    from .evaluate import lm_loss

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
        memo[n_blocks] = evaluate(data["model"], data, n_blocks, device)["english"]
    return memo[n_blocks]


def teacher_loss(data, n_blocks: int, device: str = "cpu") -> float:
    return teacher_eval(data, n_blocks, device)["loss"]


def versus_teacher(data, model, n_blocks: int, device: str = "cpu") -> dict:
    """A student's held-out English loss against the teacher's on the same blocks: the difference with a paired
    bootstrap interval over sequences (delta, lo, hi) and "tie" when the interval contains 0."""
    from .evaluate import paired_bootstrap

    student = evaluate(model, data, n_blocks, device)["english"]
    b = paired_bootstrap(teacher_eval(data, n_blocks, device), student)
    return {"loss": student["loss"], "delta": b["delta"], "lo": b["lo"], "hi": b["hi"],
            "tie": bool(b["lo"] <= 0 <= b["hi"])}


def compare(teacher: dict, student: dict) -> dict:
    """Teacher vs student per evaluation set: losses, perplexities and the bootstrap CI of the difference."""
    from .evaluate import paired_bootstrap

    out = {}
    for name in teacher:
        b = paired_bootstrap(teacher[name], student[name])
        out[name] = {"teacher_loss": teacher[name]["loss"], "student_loss": student[name]["loss"],
                     "teacher_ppl": teacher[name]["ppl"], "student_ppl": student[name]["ppl"], **b}
    return out


# ------------------------------------------------------------------------------------------------ a. exp 3
def measure_exp3(data, cfg: CompressionConfig, teacher: dict, device: str = "cpu") -> dict:
    from . import compress as C

    model = data["model"]
    layer = middle_layer(model, cfg)
    mods = block_modules(model, ("mlp",), str(layer))
    bases = C.Bases(mods, "svd")
    with C.swapped(model, {p: bases.module(p, cfg.exp3_rank) for p in mods}):
        n_params = sum(p.numel() for p in model.parameters())
        student = evaluate(model, data, device=device)
    res = compare(teacher, student)
    metrics = {f"{k}.{m}": v for k, d in res.items() for m, v in d.items()}
    metrics.update(layer=layer, rank=cfg.exp3_rank, params_after=n_params)
    return {"metrics": metrics, "table": res, "params": {"total_after": n_params}}


# ------------------------------------------------------------------------------------------------ b. sweep
def measure_sweep(data, cfg: CompressionConfig, stats: dict, device: str = "cpu") -> dict:
    """Loss on held-out English for every (method, group, reduction); the reduction is of the targeted block
    Linears' parameters (each matrix keeps 1 - reduction of its parameters)."""
    from . import compress as C

    model = data["model"]
    base = teacher_loss(data, cfg.sweep_eval_blocks, device)
    total = sum(p.numel() for p in model.parameters())
    rows = []
    mods = block_modules(model, layers=cfg.layers)
    for method in cfg.methods:
        made = bases(data, cfg, method, stats)
        for group in cfg.groups:
            names = ("attention", "mlp") if group == "both" else (group,)
            for red in cfg.reductions:
                ranks = C.resolve_plan(model, [C.Target(names, cfg.layers, ratio=1 - red)])
                new = {p: made.module(p, r) for p, r in ranks.items()}
                removed = sum(mods[p].weight.numel() - sum(x.numel() for x in new[p].parameters()) for p in new)
                with C.swapped(model, new):
                    v = versus_teacher(data, model, cfg.sweep_eval_blocks, device)
                rows.append({"method": method, "group": group, "reduction": red, "params": total - removed,
                             "params_removed": removed, **v})
    return {"rows": rows, "teacher_loss": base, "teacher_params": total}


# ------------------------------------------------------------------------------------------------ c. fitting
def measure_fitting(data, cfg: CompressionConfig, device: str = "cpu") -> dict:
    """Closed form (whiten) vs the seed's Adam fit on the same captured inputs of one middle-layer Linear, at the
    same rank: held-out MSE and wall time; then the one-prompt trap (rank above the number of tokens)."""
    import torch

    from . import compress as C

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
    closed = C.factorize(lin32, cfg.fit_rank, "whiten", stats)
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
    full = C.factorize(lin32, cfg.trap_rank, "whiten", stats)
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
    from . import compress as C

    model = data["model"]
    base = teacher_loss(data, cfg.sens_eval_blocks, device)
    from .surgery import parse_layers

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
def measure_healing(data, cfg: CompressionConfig, stats: dict, device: str = "cpu", seed: int = 0) -> dict:
    """Compress every block Linear by heal_reduction with heal_method, then fine-tune only the low-rank factors on
    the calibration (train) text for a few steps: how much of the loss increase comes back?"""
    from . import compress as C

    import copy

    from .data import lm_blocks
    from .train import train_causal_lm

    base = teacher_loss(data, cfg.sweep_eval_blocks, device)
    student = copy.deepcopy(data["model"])
    made = bases(data, cfg, cfg.heal_method, stats)
    ranks = C.resolve_plan(student, [C.Target(("attention", "mlp"), cfg.layers, ratio=1 - cfg.heal_reduction)])
    params_before = sum(p.numel() for p in student.parameters())
    C.replace(student, {p: made.module(p, r) for p, r in ranks.items()})
    params_after = sum(p.numel() for p in student.parameters())
    before = evaluate(student, data, cfg.sweep_eval_blocks, device)["english"]["loss"]
    train = lm_blocks(data["calib_split"], data["tok"], cfg.heal_block,
                      max_blocks=cfg.heal.max_steps * cfg.heal.batch_size * cfg.heal.grad_accum)
    teacher = data["model"]
    if str(device).startswith("cuda"):      # the teacher is not needed while healing: give its GPU memory to AdamW
        teacher.to("cpu")
    try:
        res = train_causal_lm(student, train, None, cfg.heal, device=device, seed=seed)
    finally:
        teacher.to(device)
    after = evaluate(res["model"], data, cfg.sweep_eval_blocks, device)["english"]["loss"]
    trainable = sum(p.numel() for p in student.parameters() if p.requires_grad)
    return {"metrics": {"teacher_loss": base, "compressed_loss": before, "healed_loss": after,
                        "recovered_fraction": (before - after) / max(before - base, 1e-9),
                        "params_before": params_before, "params_after": params_after,
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
    from . import compress as C
    from .provenance import track

    data = load(run.cfg, run.device)
    with track(run.device) as t:
        data["stats"] = C.calibrate(data["model"], data["calib_batches"], block_modules(data["model"]), run.device)
        data["teacher"] = evaluate(data["model"], data, device=run.device)
    data["calibration_s"] = t.wall_s
    print(f"calibration: {next(iter(data['stats'].values())).n:,} tokens, {len(data['stats'])} Linears, "
          f"{t.wall_s:.0f} s")
    return data


def exp3(run, data, force: bool = False) -> dict:
    """a. The notes' experiment 3: one middle layer's MLP at rank exp3_rank by plain SVD, teacher vs student with a
    paired bootstrap interval per evaluation set."""
    from .provenance import track
    from .results import load_or_run

    def compute():
        with track(run.device) as t:
            a = measure_exp3(data, run.cfg, data["teacher"], run.device)
        rows = [{"set": name, **r} for name, r in a["table"].items()]
        return {"metrics": {k: a["metrics"][k] for k in ("layer", "rank", "params_after")},
                "tables": {"heldout": rows}, "params": a["params"], "provenance": t.as_dict()}

    return load_or_run(run, "a_exp3", "svd-mlp-one-layer", compute, force=force)


def sweep(run, data, force: bool = False) -> dict:
    """b. Every (method, group, reduction) on held-out English (rows: params, loss, delta to the teacher)."""
    from .provenance import track
    from .results import load_or_run

    def compute():
        with track(run.device) as t:
            b = measure_sweep(data, run.cfg, data["stats"], run.device)
        return {"metrics": {"teacher_loss": b["teacher_loss"], "teacher_params": b["teacher_params"]},
                "tables": {"rows": b["rows"]}, "provenance": t.as_dict()}

    return load_or_run(run, "b_sweep", "methods-x-reductions", compute, force=force)


def fitting(run, data, force: bool = False) -> dict:
    """c. Closed form vs the seed's Adam fit (rows per fit), and the one-prompt trap (metrics trap.*)."""
    from .results import load_or_run

    return load_or_run(run, "c_fitting", f"{run.cfg.fit_module}-rank{run.cfg.fit_rank}",
                       lambda: _fitting(run, data), force=force)


def _fitting(run, data) -> dict:
    from .provenance import track

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
    from .provenance import track
    from .results import load_or_run

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
    """e. A short fine-tune of the compressed model's factors and the share of the loss increase it recovers."""
    from .results import load_or_run

    return load_or_run(run, "e_healing", f"{run.cfg.heal_method}-{int(run.cfg.heal_reduction * 100)}pct",
                       lambda: measure_healing(data, run.cfg, data["stats"], run.device, run.seed), force=force)


# ------------------------------------------------------------------------------------------------ from records
def _fit_rows(c: dict) -> dict:
    return {(r["fit"], r["steps"]): r for r in c["tables"]["fit"]}


def target_ratios(b: dict, c: dict, reduction: float = 0.2) -> dict:
    """The issue's two targets, from the b_sweep and c_fitting records: whiten's loss increase / svd's at
    `reduction` of all block Linears, and the closed form's speed-up and held-out MSE against Adam at every step
    count tried."""
    rows = {(r["method"], r["group"], r["reduction"]): r for r in b["tables"]["rows"]}
    out = {}
    w, s = rows.get(("whiten", "both", reduction)), rows.get(("svd", "both", reduction))
    if w and s:
        out["whiten_over_svd_delta"] = w["delta"] / s["delta"] if s["delta"] else float("nan")
    fits = _fit_rows(c)
    adam = {k[1]: v for k, v in fits.items() if k[0] == "Adam"}
    closed = fits[("closed form (whiten)", None)]
    if adam:
        longest = max(adam)
        out["adam_steps"] = longest
        out["speedup_vs_adam"] = adam[longest]["wall_s"] / max(closed["wall_s"], 1e-9)
        out["closed_no_worse_at_every_step"] = all(closed["heldout_mse"] <= m["heldout_mse"] * (1 + 1e-6)
                                                   for m in adam.values())
    return out


def exp3_table(a: dict):
    """The notes' experiment 3 beside ours (teacher vs student, delta with its 95% interval)."""
    import pandas as pd

    rows = [{"measured on": "notes: Mistral layer 17/32, N=100k (likely-seen train rows)",
             "teacher_loss": NOTES["exp3_teacher_100k"], "student_loss": NOTES["exp3_student_100k"]}]
    rows += [{"measured on": f"ours: held-out {r['set']} ({a['profile']}), layer {a['metrics']['layer']}",
              **{k: r[k] for k in ("teacher_loss", "student_loss", "delta", "lo", "hi", "tokens")}}
             for r in a["tables"]["heldout"]]
    return pd.DataFrame(rows).set_index("measured on")


def sweep_table(b: dict, reductions=None):
    """Loss increase over the teacher: (group, reduction) x method."""
    import pandas as pd

    df = pd.DataFrame(b["tables"]["rows"])
    if reductions:
        df = df[df.reduction.isin(reductions)]
    if "lo" not in df:                      # records made before the intervals
        return df.pivot_table(index=["group", "reduction"], columns="method", values="delta")
    # delta [95% paired-bootstrap interval over sequences]; "tie" where the interval contains 0
    df["delta [95% CI]"] = [f"{r.delta:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]" + (" tie" if r.lo <= 0 <= r.hi else "")
                            for r in df.itertuples()]
    return df.pivot(index=["group", "reduction"], columns="method", values="delta [95% CI]")


def sweep_figure(b: dict):
    """Held-out loss against parameters per method, one panel per group, the teacher as a line."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from . import plots

    df = pd.DataFrame(b["tables"]["rows"])
    groups = list(dict.fromkeys(df.group))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        g = df[df.group == group]
        plots.curves(ax, {m: dict(zip(gm["params"], gm["loss"])) for m, gm in g.groupby("method")}, title=group,
                     ylabel="held-out loss", hlines={"teacher": b["metrics"]["teacher_loss"]}, xlabel="parameters")
    fig.tight_layout()
    return fig


def fit_table(c: dict):
    import pandas as pd

    return pd.DataFrame(c["tables"]["fit"])


def trap_text(c: dict) -> str:
    m = c["metrics"]
    lines = [f"{m['trap.tokens']} calibration tokens, rank {m['trap.rank']}: calibration MSE {m['trap.calib_mse']:.2e}, "
             f"held-out MSE {m['trap.heldout_mse']:.4f} vs {m['trap.full_calib_heldout_mse']:.4f} when calibrated on "
             f"{m['calib_tokens']:,} tokens (output mean square {m['trap.signal']:.4f})"]
    return "\n".join(lines + [w["warning"] for w in c["tables"].get("trap_warnings", [])])


def sensitivity_figure(d: dict):
    import matplotlib.pyplot as plt

    from . import plots

    rows = d["tables"]["layers"]
    fig, ax = plt.subplots(figsize=(12, 2.2))
    plots.heatmap(ax, {g: [r[g] for r in rows] for g in ("attention", "mlp")}, [r["layer"] for r in rows],
                  title=f"loss increase, one layer at rank {d['metrics']['rank']} (plain SVD)")
    return fig


def healing_table(e: dict):
    import pandas as pd

    return pd.Series(e["metrics"]).to_frame("value")


def conclusion(a: dict, b: dict, c: dict, d: dict, e: dict) -> str:
    """Sentences from the five records."""
    import numpy as np

    lines = []
    for r in a["tables"]["heldout"]:
        lines.append(f"a. {r['set']}: rank-{a['metrics']['rank']} SVD of layer {a['metrics']['layer']}'s MLP changes "
                     f"the held-out loss by {r['delta']:+.4f} (95% CI {r['lo']:+.4f} .. {r['hi']:+.4f}, "
                     f"{r['tokens']:,} tokens).")
    t = target_ratios(b, c)
    if "whiten_over_svd_delta" in t:
        lines.append(f"b. at 20% fewer block-Linear parameters, whiten's loss increase is "
                     f"{t['whiten_over_svd_delta']:.3f} of plain SVD's (target <= 0.2).")
    fits = _fit_rows(c)
    closed = fits[("closed form (whiten)", None)]
    if "speedup_vs_adam" in t:
        adam = ", ".join(f"{k[1]}: {v['heldout_mse']:.4g}" for k, v in fits.items() if k[0] == "Adam")
        lines.append(f"c. the closed form is {t['speedup_vs_adam']:,.0f}x faster than {t['adam_steps']:,} Adam steps "
                     f"(target >= 100) and its held-out MSE is "
                     f"{'no worse than' if t['closed_no_worse_at_every_step'] else 'WORSE than'} Adam's at every "
                     f"step count tried ({closed['heldout_mse']:.4g} vs {adam}).")
    m = c["metrics"]
    lines.append(f"c. trap: {m['trap.tokens']} tokens at rank {m['trap.rank']} fit to MSE {m['trap.calib_mse']:.1e} but "
                 f"held-out MSE is {m['trap.heldout_mse'] / max(m['trap.full_calib_heldout_mse'], 1e-12):.1f}x that "
                 f"of the same rank calibrated on {m['calib_tokens']:,} tokens.")
    rows = d["tables"]["layers"]
    att, mlp = np.array([r["attention"] for r in rows]), np.array([r["mlp"] for r in rows])
    if "attention_lo" in rows[0]:
        clear = {g: [r["layer"] for r in rows if r[f"{g}_lo"] > 0] for g in ("attention", "mlp")}
        lines.append(f"d. layers whose loss increase is beyond its 95% paired-bootstrap interval (the rest are ties "
                     f"with the teacher): attention {clear['attention'] or 'none'}; MLP {clear['mlp'] or 'none'}.")
    k = max(1, round(6 / 32 * len(att)))
    lines.append(f"d. one layer's attention at rank {d['metrics']['rank']}: mean loss increase {att[:k].mean():+.3f} "
                 f"in the first {k} layers vs {att[k:].mean():+.3f} after (worst layer "
                 f"{rows[int(att.argmax())]['layer']}); one layer's MLP: {mlp[:k].mean():+.3f} vs {mlp[k:].mean():+.3f} "
                 f"(worst layer {rows[int(mlp.argmax())]['layer']}).")
    h = e["metrics"]
    lines.append(f"e. healing: {h['steps']} steps on {h['tokens']:,} tokens bring the loss from "
                 f"{h['compressed_loss']:.3f} to {h['healed_loss']:.3f} (teacher {h['teacher_loss']:.3f}): "
                 f"{100 * h['recovered_fraction']:.0f}% of the increase recovered.")
    return "\n".join(lines)


SECTIONS = ("a_exp3", "b_sweep", "c_fitting", "d_sensitivity", "e_healing")


def report(records: list[dict]):
    """Analysis.ipynb's section for notebook 04, from records only (no torch)."""
    from .analysis import Report, by_experiment

    rep = Report(TITLE, records)
    recs = {e: rs[0] for e, rs in by_experiment(rep.records).items()}
    if "b_sweep" in recs:
        rep.figure("held-out loss vs parameters", sweep_figure(recs["b_sweep"]))
        rep.table("loss increase over the teacher at 10/20/40% fewer block-Linear parameters",
                  sweep_table(recs["b_sweep"], (0.1, 0.2, 0.4)))
    if "d_sensitivity" in recs:
        rep.figure("layer sensitivity", sensitivity_figure(recs["d_sensitivity"]))
    if "a_exp3" in recs:
        rep.table("the notes' experiment 3 beside ours", exp3_table(recs["a_exp3"]))
    if "c_fitting" in recs:
        rep.table("closed form vs Adam", fit_table(recs["c_fitting"]))
    if "e_healing" in recs:
        rep.table("healing", healing_table(recs["e_healing"]))
    if all(s in recs for s in SECTIONS):
        rep.text = conclusion(*(recs[s] for s in SECTIONS))
    return rep
