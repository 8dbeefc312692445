"""Notebook 00: the data, the tokenizers, a pretrained reference model and a from-scratch baseline.

Proves the stack end to end: corpus statistics per split, tokenizer fertility (tokens per word), SmolLM2's loss on
each held-out corpus, and a small GPT-NeoX trained from scratch with its train/validation curve against the
unigram-entropy line (what a model that ignores context would score). Sections write records; tables, figures and
the conclusion are functions of records, shared by the notebook and `report()` (Analysis.ipynb).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .models import NeoXSize
from .pretrain import PretrainConfig, head
from .train import TrainConfig

NOTEBOOK = "00_data_and_baselines"
TITLE = "Data, tokenizers and baselines"


@dataclass
class DataStudyConfig:
    stats_corpora: tuple = ("en", "ru", "wordnet")
    stats_max_docs: int | None = None          # per split; None = all
    tokenizers: tuple = ("en-bpe-8192", "ru-bpe-8192", "smollm2")
    ref_model: str = "smollm2"                  # pretrained reference model
    ref_corpora: tuple = ("en", "ru", "wordnet")
    ref_split: str = "test"
    ref_block: int = 256
    ref_blocks: int = 16                        # blocks per corpus for the reference model's held-out loss
    lm: PretrainConfig = field(default_factory=PretrainConfig)

    def __post_init__(self):
        if isinstance(self.lm, dict):
            self.lm = PretrainConfig(**self.lm)
        if self.ref_split not in ("validation", "test"):
            raise ValueError(f"ref_split must be a held-out split (validation or test), got '{self.ref_split}'")
        for name in ("ref_block", "ref_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


PROFILES = {
    "tiny": DataStudyConfig(
        stats_max_docs=40, ref_blocks=2, ref_block=64,
        lm=PretrainConfig(size=NeoXSize(hidden=32, layers=2, heads=2), block=32, train_docs=20, eval_blocks=8,
                          train=TrainConfig(max_steps=30, batch_size=8, lr=3e-3, eval_every=15, log_every=5,
                                            warmup_steps=3, scheduler="cosine", progress=False))),
    "local": DataStudyConfig(
        ref_blocks=24, ref_block=256,
        lm=PretrainConfig(size=NeoXSize(hidden=128, layers=4, heads=4), block=128, eval_blocks=96,
                          train=TrainConfig(max_steps=600, batch_size=16, lr=2e-3, eval_every=100, log_every=20,
                                            warmup_steps=30, scheduler="cosine", weight_decay=0.1, adam_beta2=0.95,
                                            time_budget_s=1200))),   # a safety stop only: the run is 600 steps
    "full": DataStudyConfig(
        stats_corpora=("wikitext2",), tokenizers=("EleutherAI/pythia-410m",),
        ref_model="HuggingFaceTB/SmolLM2-135M-Instruct", ref_corpora=("wikitext2",), ref_blocks=256, ref_block=1024,
        lm=PretrainConfig(corpus="wikitext2", tokenizer="EleutherAI/pythia-410m",
                          size=NeoXSize(hidden=512, layers=8, heads=8), block=1024, eval_blocks=256,
                          train=TrainConfig(max_steps=3000, batch_size=8, grad_accum=2, lr=6e-4, eval_every=250,
                                            log_every=50, warmup_steps=100, scheduler="cosine", weight_decay=0.1,
                                            adam_beta2=0.95))),
}


# ------------------------------------------------------------------------------------------------ sections
def corpora(run, force: bool = False) -> dict:
    """Section 1: one row per (corpus, split) with documents, chars, words, tokens and fertility per tokenizer."""
    from .results import load_or_run

    cfg = run.cfg

    def compute():
        from .data import corpus_stats, load_corpus, load_tokenizer
        from .provenance import track

        with track(run.device) as t:
            toks = {name: load_tokenizer(name) for name in cfg.tokenizers}
            rows = []
            for corpus in cfg.stats_corpora:
                dsd = load_corpus(corpus)
                dsd = {s: head(dsd[s], cfg.stats_max_docs) for s in ("train", "validation", "test")}
                rows += [{"corpus": corpus, **r} for r in corpus_stats(dsd, toks)]
        return {"tables": {"splits": rows}, "provenance": t.as_dict()}

    config = {k: v for k, v in asdict(cfg).items() if k.startswith("stats_") or k == "tokenizers"}
    return load_or_run(run, "corpora", "corpus-stats", compute, config, force)


def reference(run, force: bool = False) -> dict:
    """Section 2: the pretrained reference model's token-weighted loss and bits per character on the held-out
    split of each corpus."""
    from .results import load_or_run

    cfg = run.cfg

    def compute():
        import torch

        from .data import lm_blocks, load_corpus, load_pretrained, load_tokenizer
        from .evaluate import lm_loss
        from .models import count_params
        from .provenance import track

        with track(run.device) as t:
            tok = load_tokenizer(cfg.ref_model)
            model = load_pretrained(cfg.ref_model, dtype=torch.float32).to(run.device)
            rows = []
            for corpus in cfg.ref_corpora:
                blocks = lm_blocks(load_corpus(corpus)[cfg.ref_split], tok, cfg.ref_block, max_blocks=cfg.ref_blocks)
                res = lm_loss(model, blocks, batch_size=4, device=run.device)
                # per-token loss is not comparable across languages (a tokenizer that splits Russian into bytes
                # gets more, easier tokens); bits per character is
                chars = sum(len(tok.decode(row[1:])) for row in blocks["input_ids"])
                rows.append({"corpus": corpus, **res,
                             "bits_per_char": res["loss"] * res["tokens"] / chars / math.log(2)})
        return {"tables": {"heldout": rows}, "params": {"total": count_params(model)}, "provenance": t.as_dict()}

    config = {k: v for k, v in asdict(cfg).items() if k.startswith("ref_")}
    return load_or_run(run, "reference", f"{cfg.ref_model.split('/')[-1]}-heldout", compute, config, force)


def pretrain(run, force: bool = False) -> dict:
    """Section 3: a small GPT-NeoX from scratch (helpers.pretrain) with its validation curve and unigram line."""
    from .results import load_or_run

    def compute():
        from .pretrain import pretrain as train

        res = train(run.cfg.lm, run.device, run.seed)
        # the run is defined by its steps; one cut short by the safety time budget is recorded as partial, never as
        # the run itself (and is not loaded by a rerun)
        return {**res, "status": "partial" if res["metrics"].get("stopped_by_budget") else "ok"}

    return load_or_run(run, "pretrain", "neox-from-scratch", compute, {"lm": asdict(run.cfg.lm)}, force)


# ------------------------------------------------------------------------------------------------ from records
def corpus_table(rec: dict):
    import pandas as pd

    return pd.DataFrame(rec["tables"]["splits"])


def fertility_table(rec: dict):
    """Tokens per whitespace word on the held-out test split (lower = the tokenizer fits the language better)."""
    stats = corpus_table(rec)
    fert = stats[stats.split == "test"].set_index("corpus").filter(like="fertility")
    fert.columns = [c[len("fertility["):-1] for c in fert.columns]
    return fert


def reference_table(rec: dict):
    import pandas as pd

    return pd.DataFrame(rec["tables"]["heldout"]).set_index("corpus")


def pretrain_table(rec: dict):
    import pandas as pd

    keys = ("steps", "tokens", "eval_loss", "test_loss", "unigram_ce", "tokens_per_s", "train_time_s",
            "stopped_by_budget")
    return pd.Series({"status": rec["status"], **{k: rec["metrics"].get(k) for k in keys}}).to_frame(rec["variant"])


def pretrain_figure(rec: dict):
    import matplotlib.pyplot as plt

    from . import plots

    size = rec["config"]["lm"]["size"]
    fig, ax = plt.subplots(figsize=(7, 4))
    plots.curves(ax, {"train": rec["curves"]["train_loss"], "validation": rec["curves"]["eval_loss"]},
                 title=f"GPT-NeoX {size['hidden']}x{size['layers']} on {rec['config']['lm']['corpus']} "
                       f"({rec['profile']})", hlines={"unigram cross-entropy": rec["metrics"]["unigram_ce"]})
    return fig


def conclusion(ref: dict | None, pre: dict | None) -> str:
    lines = []
    if pre is not None:
        m = pre["metrics"]
        lines.append(f"from scratch: validation loss {m['eval_loss']:.3f} vs unigram cross-entropy {m['unigram_ce']:.3f} "
                     f"({m['unigram_ce'] - m['eval_loss']:+.3f} nats below it) after {m['steps']} steps / "
                     f"{m['tokens']:,} tokens at {m['tokens_per_s']:,.0f} tokens/s; test loss {m['test_loss']:.3f}"
                     + (" (stopped by the time budget)" if m.get("stopped_by_budget") else "") + ".")
    if ref is not None:
        model = ref["config"]["ref_model"]
        for r in ref["tables"]["heldout"]:
            lines.append(f"{model} on held-out {r['corpus']}: {r['bits_per_char']:.3f} bits/char, loss "
                         f"{r['loss']:.3f} (ppl {r['ppl']:.1f}) over {r['tokens']} tokens")
    return "\n".join(lines)


def report(records: list[dict]):
    """Analysis.ipynb's section for notebook 00, from records only (no torch)."""
    from .analysis import Report, by_experiment

    rep = Report(TITLE, records)
    recs = {e: rs[0] for e, rs in by_experiment(rep.records).items()}
    if "corpora" in recs:
        rep.table("corpora per split", corpus_table(recs["corpora"]))
        rep.table("fertility on the test split (tokens per word)", fertility_table(recs["corpora"]))
    if "reference" in recs:
        rep.table("pretrained reference on held-out text", reference_table(recs["reference"]))
    if "pretrain" in recs:
        rep.table("from-scratch GPT-NeoX", pretrain_table(recs["pretrain"]))
        rep.figure("from-scratch GPT-NeoX: curves", pretrain_figure(recs["pretrain"]))
    rep.text = conclusion(recs.get("reference"), recs.get("pretrain"))
    return rep


def pretrain_command(profile: str, seed: int, max_steps: int | None) -> None:
    """`python -m helpers pretrain` / `accelerate launch -m helpers pretrain`: the notebook's section 3 as a script.

    Under accelerate/torchrun every process trains on its shard (the Trainer handles DDP); rank 0 writes the record.
    """
    import dataclasses
    import os

    from .pretrain import pretrain as train
    from .profiles import resolve
    from .results import save_run

    rank = int(os.environ.get("RANK", 0))
    run = resolve(NOTEBOOK, PROFILES, profile, seed=seed, quiet=rank != 0)
    lm = run.cfg.lm
    if max_steps:
        lm = dataclasses.replace(lm, train=dataclasses.replace(lm.train, max_steps=max_steps))
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if run.device == "cuda" else run.device
    res = train(lm, device=device, seed=seed)
    if rank == 0:
        path = save_run(NOTEBOOK, "pretrain", "neox-from-scratch-cli", {"lm": asdict(lm)}, res["metrics"],
                        profile=run.profile, seed=seed, curves=res["curves"], params=res["params"],
                        provenance=res["provenance"], device=run.device)
        print(f"eval_loss {res['metrics'].get('eval_loss'):.4f}  world_size {res['provenance']['world_size']}  -> {path}")
