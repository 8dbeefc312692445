"""The GPU-profile dry runs' shared parts: the offline hub stand-in (FakeHub), the `full_offline` fixture, the
notebook start as PROFILE=full builds it, and the checks every dry run makes. The dry runs are split over
test_full_dryrun.py (00-03, 07, the hub table), test_dryrun_compression.py (04), test_dryrun_looped.py (05)
and test_dryrun_sft.py (06) so that `make test`'s workers can share them (pytest-xdist sends a file to one
worker). What is cut, and why: test_full_dryrun.py's docstring."""
from __future__ import annotations

import copy
import math
import random

import pytest
import torch

from helpers import hub, parallel
from helpers.analysis import records_of
from helpers.families import resolve

EN = ("the of and to in a is was for on as with by he at from his an were are which this be or has had not but "
      "first one their its new after who they have her she two been other when there all during into school time "
      "may years more most only over city some world would where later up such used many can state about national "
      "out known university united then made").split()
RU = ("и в не на что с по как из это он его для от но так был к же была по за то все она при до они мы года "
      "время город первый после также только может более один два России история человек жизнь работа мир").split()


def _docs(words, n_docs: int, seed: int, sentences: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))).capitalize() + "."
                     for _ in range(sentences)) for _ in range(n_docs)]


class FakeHub:
    """Stands in for helpers.hub.call: serves a same-shaped offline object for every id in hub.HUB_IDS and records
    what the code asked for (function, id, config / split)."""

    MISTRAL_CUT = dict(hidden_size=512, intermediate_size=1792, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=1)

    def __init__(self, tmp_path):
        self.tmp, self.calls, self._tok, self._models = tmp_path, [], {}, {}

    def __call__(self, what, fn, *args, **kw):
        owner = getattr(getattr(fn, "__self__", None), "__name__", "")
        name = f"{owner}.{fn.__name__}" if owner else fn.__name__
        ident = args[0]
        self.calls.append((name, ident, args[1] if len(args) > 1 else kw.get("split")))
        assert ident in hub.HUB_IDS, f"{ident} is loaded by the code but missing from helpers.hub.HUB_IDS"
        spec = hub.HUB_IDS[ident]
        if name == "load_dataset":
            return self.dataset(ident, spec, args, kw)
        if name == "AutoTokenizer.from_pretrained":
            return self.tokenizer(ident, spec)
        if name == "AutoModelForCausalLM.from_pretrained":
            return self.model(ident, spec, kw.get("dtype"))
        raise AssertionError(f"unexpected hub call {name}({ident})")

    def dataset(self, ident, spec, args, kw):
        from datasets import Dataset, DatasetDict

        assert spec["kind"] == "dataset"
        assert (args[1] if len(args) > 1 else None) == spec["config"], f"{ident}: config {args[1:]} vs the table"
        words = RU if spec["config"] and spec["config"].endswith(".ru") else EN

        def split(n, seed):
            pool = _docs(words, min(n, 200), seed)
            texts = [pool[i % len(pool)] for i in range(n)]
            cols = {c: [f"{c} {i}" for i in range(n)] for c in spec["columns"] if c != "text"}
            if "text" in spec["columns"]:
                cols["text"] = texts
            if "question" in cols:                       # oo-gpt4: question / response pairs, a sentence each, so
                short = [t.split(".")[0] + "." for t in texts]   # that rows fit the dry run's short blocks
                cols["question"], cols["response"] = short, short[1:] + short[:1]
            # a short conversation (a 32-character question, a 48-character answer): the 06 dry runs' cost grows
            # with its length times SmolLM2's 49k-word head (with the whole document as the answer, ~300 tokens,
            # 06's full dry run took 5 of the suite's 15 minutes; with 80 + 160 characters, 3.5); the code path is
            # the same at any length under max_length
            turns = [[{"role": "user", "content": t[:32]}, {"role": "assistant", "content": t[32:80]}]
                     for t in texts]
            if "messages" in cols:                       # UltraChat / UltraFeedback: conversations
                cols["messages"], cols["prompt"] = turns, [t[:32] for t in texts]
            if "chosen" in cols:
                cols["chosen"] = turns
                cols["rejected"] = [[m, {"role": "assistant", "content": m["content"][::-1]}] for m, _ in turns]
            return Dataset.from_dict(cols)

        if kw.get("split"):
            assert kw["split"] in spec["splits"]
            # oo-gpt4: the notes split off 100,000 rows for their test set, so the stand-in needs more rows than that
            n = 100_050 if ident.startswith("openaccess-ai-collective") else 80 if "train" in kw["split"] else 12
            return split(n, 0)
        return DatasetDict({s: split(80 if s == "train" else 12, i) for i, s in enumerate(spec["splits"])})

    def tokenizer(self, ident, spec):
        from transformers import AutoTokenizer

        from helpers.assets import train_bpe

        if ident not in self._tok:
            folder = self.tmp / "tok" / ident.replace("/", "--")
            words = RU if ident.endswith(".ru") else EN
            train_bpe(_docs(words, 200, 7), folder, min(spec["vocab"], 2048), {"stand_in_for": ident})
            self._tok[ident] = AutoTokenizer.from_pretrained(folder)
            if ident == "Open-Orca/Mistral-7B-OpenOrca":     # its 32,002 = Mistral's 32,000 + ChatML's two markers
                self._tok[ident].add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
            assert len(self._tok[ident]) <= spec["vocab"]
        return self._tok[ident]

    def model(self, ident, spec, dtype):
        """A same-shaped model with random weights, built once per (id, dtype) and copied on every later load (a
        notebook loads its base model once per run; building the 49k-row embeddings each time cost minutes)."""
        key = (ident, dtype)
        if key not in self._models:
            self._models[key] = self._build(ident, spec, dtype)
        return copy.deepcopy(self._models[key])

    def _build(self, ident, spec, dtype):
        from transformers import LlamaConfig, MistralConfig

        from helpers.models import from_config, mistral_config, smollm2_config

        if ident == "Open-Orca/Mistral-7B-OpenOrca":
            conf = mistral_config()
            for k, v in self.MISTRAL_CUT.items():
                setattr(conf, k, v)
            conf.head_dim = conf.hidden_size // conf.num_attention_heads
            assert isinstance(conf, MistralConfig) and conf.vocab_size == spec["vocab"]
        elif ident == "HuggingFaceTB/SmolLM2-360M":         # its real shape, 2 of its 32 layers
            conf = smollm2_config()
            conf.num_hidden_layers = 2
            assert conf.vocab_size == spec["vocab"]
        else:                                                # SmolLM2-135M's shape, random weights
            conf = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                               num_key_value_heads=3, vocab_size=spec["vocab"], tie_word_embeddings=True)
        torch.manual_seed(0)
        return from_config(conf, dtype=dtype)


@pytest.fixture
def full_offline(tmp_path, monkeypatch):
    """PROFILE=full with the hub replaced by FakeHub; caches and records go to a temporary folder. The jobs run in
    this process (parallel.IN_PROCESS), where the stand-in hub lives: a job's own process would not see it."""
    fake = FakeHub(tmp_path)
    monkeypatch.setattr(hub, "call", fake)
    monkeypatch.setattr(parallel, "IN_PROCESS", True)
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("LAB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return fake


def full_run(notebook: str, overrides: dict, profile: str = "full"):
    """The notebook's start exactly as in PROFILE=full (or gpu-small): helpers.families.resolve, with its memory
    plan, offline."""
    return resolve(notebook, profile, overrides=overrides, check_hub=False, quiet=True)


def reported(report_module, run) -> str:
    """The notebook's last cell: the family's report of the records this run wrote or loaded; its conclusion."""
    rep = report_module.report(run.records)
    assert rep.records and rep.text, "the report of this run's records is empty"
    return rep.text


def assert_finite(records, where: str):
    """Every number of every record's metrics (what the notebooks print and plot) is finite; `records` is what a
    section returns ({(variant, seed): record}, or one record), or a list of those."""
    recs = [r for part in (records if isinstance(records, list) else [records]) for r in records_of(part)]
    assert recs, f"{where}: no record written"
    for r in recs:
        for k, v in r["metrics"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert math.isfinite(v), f"{where}: {r['experiment']} {k} = {v}"
        assert r["profile"] in ("full", "gpu-small")


# compile off: compiling the 410m shape costs minutes of CPU here (compile with the surgery modules: test_train)
