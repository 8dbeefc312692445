"""Notebook 06's pieces: sense-pinned prompts, hard negatives, the length filter, prompt masking (ours and TRL's),
the measurements, and the errors on bad input."""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from helpers.data import CHATML, ensure_chat_template
from helpers.sft import chats, measure, trainers
from helpers.sft import config as C
from helpers.sft import report as R
from helpers.sft import study as S
from helpers.sft import verdicts as SV


def _doc(i, word, definition, pos="noun", synonyms=(), examples=(), hypernyms=()):
    return {"doc": f"wn/{pos}/{i:08d}", "word": word, "synonyms": list(synonyms), "pos": pos,
            "definition": definition, "examples": list(examples), "hypernyms": list(hypernyms)}


DOCS = [
    _doc(1, "bank", "sloping land beside a body of water", examples=["they pulled the canoe up on the bank"],
         hypernyms=["wn/noun/00000100"]),
    _doc(2, "bank", "a financial institution that accepts deposits", examples=["he cashed a check at the bank"]),
    _doc(3, "depository", "a facility where things can be deposited for storage", synonyms=["bank"]),
    _doc(4, "cell", "the basic structural unit of all organisms", hypernyms=["wn/noun/00000200"]),
    _doc(5, "tissue", "part of an organism of similar cells", hypernyms=["wn/noun/00000200"]),
    _doc(6, "run", "a score in baseball"),
    _doc(7, "run", "a race run on foot"),
    _doc(8, "zymurgy", "the branch of chemistry that deals with fermentation"),
]


def test_pinned_question_pins_the_sense_or_skips_the_word():
    senses = chats.sense_index(DOCS)
    assert len(senses["bank"]) == 3                       # two headword senses and one synonym
    q, how = chats.pinned_question(DOCS[0], len(senses["bank"]))
    assert how == "usage example" and q == 'What does "bank" mean in "they pulled the canoe up on the bank"?'
    q, how = chats.pinned_question(DOCS[7], len(senses["zymurgy"]))
    assert how == "single sense" and q == 'What does the noun "zymurgy" mean?'
    assert chats.pinned_question(DOCS[5], len(senses["run"])) is None      # two senses, no example: ambiguous
    # the word must appear as a word in the example, not inside another word
    d = _doc(9, "ban", "an official prohibition", examples=["the bank was closed"])
    assert chats.pinned_question(d, 2) is None


def test_hard_negatives_are_another_sense_else_a_sibling_never_the_gloss_itself():
    senses = chats.sense_index(DOCS)
    children = {}
    for j, d in enumerate(DOCS):
        for h in d["hypernyms"]:
            children.setdefault(h, []).append(j)
    for seed in range(5):
        j, kind = chats.hard_negative(0, DOCS, senses, children, random.Random(seed))
        assert kind == "other sense" and j in (1, 2) and DOCS[j]["definition"] != DOCS[0]["definition"]
    verb = DOCS + [_doc(10, "bank", "tip laterally", pos="verb")]
    assert all(chats.hard_negative(0, verb, chats.sense_index(verb), children, random.Random(s))[0] != 8
               for s in range(10))                         # another noun sense first, not the verb
    j, kind = chats.hard_negative(3, DOCS, senses, children, random.Random(0))
    assert (j, kind) == (4, "sibling")                     # 'cell' has one sense: a sibling under its hypernym
    assert chats.hard_negative(7, DOCS, senses, children, random.Random(0)) is None


def test_wordnet_chats_on_the_real_corpus():
    """Every pair's rejected gloss is another sense of the word or a sibling, never the chosen one; no headword is
    in two splits; the shorter answer is the chosen one about half the time (no length shortcut)."""
    from helpers.data import load_corpus, load_tokenizer

    corpus = load_corpus("wordnet")
    rows, counts = chats.wordnet_chats(corpus)
    words = {s: {r["word"].lower() for r in rows[s]} for s in rows}
    assert not (words["train"] & words["test"]) and not (words["train"] & words["validation"])
    docs = [d for s in ("train", "validation", "test") for d in corpus[s].to_list()]
    by_gloss = {}
    for d in docs:
        by_gloss.setdefault(d["definition"], []).append(d)
    pairs = [r for r in rows["test"] if r["rejected"]]
    assert len(pairs) > 1000 and counts["test"]["negative: other sense"] > 100
    for r in pairs[:400]:
        c, rej = r["chosen"][0]["content"], r["rejected"][0]["content"]
        assert c != rej
        me = [d for d in by_gloss[c] if d["word"] == r["word"]]
        others = by_gloss[rej]
        if r["kind"] == "other sense":
            assert any(r["word"].lower() in {o["word"].lower(), *map(str.lower, o["synonyms"])} for o in others)
        else:
            assert any(set(o["hypernyms"]) & set(m["hypernyms"]) for o in others for m in me)
    acc = measure.length_only_accuracy(load_tokenizer("smollm2"), pairs[:300])
    assert 0.35 < acc < 0.65


def test_fit_length_drops_or_truncates_and_refuses_an_empty_result():
    rows, lengths = ["a", "b", "c", "d"], [10, 70, 64, 65]
    kept, info = chats.fit_length(rows, lengths, 64, "drop")
    assert kept == ["a", "c"] and info["dropped"] == 2 and info["truncated"] == 0
    kept, info = chats.fit_length(rows, lengths, 64, "truncate")
    assert kept == rows and info["truncated"] == 2 and info["dropped"] == 0
    with pytest.raises(chats.DataError, match="max_length=8"):
        chats.fit_length(rows, lengths, 8, "drop")
    with pytest.raises(ValueError, match="allowed: drop, truncate"):
        chats.fit_length(rows, lengths, 64, "cut")


@pytest.fixture(scope="module")
def tok():
    from helpers.data import load_tokenizer

    return load_tokenizer("smollm2")


@pytest.fixture(scope="module")
def small_lm(tok):
    from transformers import LlamaConfig

    from helpers.models import from_config

    def make(seed=0):
        import torch

        torch.manual_seed(seed)
        return from_config(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, num_key_value_heads=1, vocab_size=len(tok),
                                       tie_word_embeddings=True))
    return make


CHAT = {"prompt": [{"role": "user", "content": 'What does "bank" mean in "the canoe is on the bank"?'}],
        "completion": [{"role": "assistant", "content": "sloping land beside a body of water"}]}


def test_prompt_tokens_carry_minus_100_and_trl_masks_the_same_tokens(tok, small_lm):
    """Our encoding and TRL's prompt-completion tokenization agree: same ids, and the loss falls on the same
    (answer) tokens."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    enc = chats.encode_rows(tok, [CHAT])[0]
    p = enc["prompt_len"]
    assert enc["labels"][:p] == [-100] * p and enc["labels"][p:] == enc["input_ids"][p:]
    answer = tok.decode(enc["input_ids"][p:])
    assert answer.startswith("sloping land beside a body of water")
    args = SFTConfig(output_dir="/tmp/lab-test-sft", max_steps=1, report_to="none", use_cpu=True, bf16=False,
                     gradient_checkpointing=False, max_length=128)
    trainer = SFTTrainer(model=small_lm(), args=args, train_dataset=Dataset.from_list([CHAT]), processing_class=tok)
    row = trainer.train_dataset[0]
    assert row["input_ids"] == enc["input_ids"]
    batch = trainer.data_collator([row])
    labels = batch["labels"][0].tolist()
    assert labels == enc["labels"]
    args_whole = dataclasses.replace(args, completion_only_loss=False)
    whole = SFTTrainer(model=small_lm(), args=args_whole, train_dataset=Dataset.from_list([CHAT]), processing_class=tok)
    assert -100 not in whole.data_collator([whole.train_dataset[0]])["labels"][0].tolist()


def test_answer_loss_is_the_token_weighted_nll_of_the_answers(tok, small_lm):
    import torch

    model = small_lm()
    rows = [CHAT, {**CHAT, "completion": [{"role": "assistant", "content": "a financial institution"}]}]
    enc = chats.encode_rows(tok, rows)
    got = measure.answer_loss(model, enc)
    total, count = 0.0, 0
    with torch.no_grad():
        for e in enc:
            ids = torch.tensor([e["input_ids"]])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
            for t in range(e["prompt_len"], len(e["input_ids"])):
                total -= float(logp[t - 1, e["input_ids"][t]])
                count += 1
    assert got["loss"] == pytest.approx(total / count, rel=1e-4)
    assert got["lo"] <= got["loss"] <= got["hi"]


def test_preference_accuracy_and_implicit_reward():
    logps = {"chosen": np.array([-1.0, -5.0, -2.0, -3.0]), "rejected": np.array([-2.0, -1.0, -3.0, -3.5])}
    ref = {"chosen": np.array([-1.0, -6.0, -1.0, -3.0]), "rejected": np.array([-1.0, -1.0, -3.0, -3.0])}
    p = measure.preference(logps, ref, beta=0.5)
    assert p["likelihood_acc"] == 0.75 and p["n"] == 4
    # margins: 0.5*[(0)-(-1), (1)-(0), (-1)-(0), (0)-(-0.5)] = [0.5, 0.5, -0.5, 0.25]
    assert p["reward_acc"] == 0.75 and p["reward_margin"] == pytest.approx(0.1875)


def test_length_only_accuracy_counts_the_shorter_chosen(tok):
    a = [{"role": "assistant", "content": "short"}]
    b = [{"role": "assistant", "content": "a much longer answer than the other one"}]
    pairs = [{"chosen": a, "rejected": b}, {"chosen": b, "rejected": a}, {"chosen": a, "rejected": a}]
    assert measure.length_only_accuracy(tok, pairs) == pytest.approx(0.5)   # 1 + 0 + 0.5 over 3
    assert measure.length_only_accuracy(tok, pairs[:1]) == 1.0


def test_token_f1():
    assert measure.token_f1("sloping land beside water", "sloping land beside a body of water") == pytest.approx(
        2 * 1.0 * (4 / 7) / (1 + 4 / 7))
    assert measure.token_f1("a bank", "") == 0.0 and measure.token_f1("", "") == 1.0
    assert measure.token_f1("Land, sloping!", "sloping land") == 1.0


def test_bad_input_errors_name_the_value(tok, small_lm):
    from datasets import Dataset

    class NoTemplate:
        chat_template = None
        name_or_path = "some/base-model"

    with pytest.raises(ValueError, match="some/base-model.*chat_template='chatml'"):
        ensure_chat_template(NoTemplate())
    t = ensure_chat_template(NoTemplate(), "chatml")
    assert t.chat_template == CHATML
    with pytest.raises(chats.DataError, match=r"lacks column\(s\) \['rejected'\]"):
        chats.pairs_from_preferences(Dataset.from_dict({"prompt": ["q"], "chosen": ["a"]}))
    with pytest.raises(chats.DataError, match=r"lacks column\(s\) \['messages'\]"):
        chats.chats_from_messages(Dataset.from_dict({"text": ["q"]}))
    with pytest.raises(ValueError, match="qkv_proj.*match nothing.*q_proj"):
        trainers.check_targets(small_lm(), ("q_proj", "qkv_proj"))
    with pytest.raises(ValueError, match="unknown data 'alpaca'; allowed: wordnet, ultra"):
        S.SFTDPOConfig(data="alpaca")
    with pytest.raises(ValueError, match="unknown SFT scheduler 'step'"):
        trainers.SFTSettings(scheduler="step")


def _chat(word, gloss, q=None):
    return {"prompt": [{"role": "user", "content": q or f'What does "{word}" mean?'}],
            "completion": [{"role": "assistant", "content": gloss}], "word": word, "rejected": None}


def test_on_policy_pairs_take_the_models_wrong_answers_and_never_its_right_ones():
    rows = [_chat("bank", "sloping land beside a body of water"), _chat("cell", "the basic unit of all organisms"),
            _chat("run", "a score in baseball"), _chat("zymurgy", "the chemistry of fermentation")]
    answers = ["sloping land beside the water", "a small room in a prison", "", "a word"]
    pairs, counts = chats.on_policy_pairs(rows, answers, max_f1=0.3)
    assert [p["word"] for p in pairs] == ["cell", "zymurgy"]                    # wrong: F1 < 0.3; empty skipped
    assert all(p["chosen"][0]["content"] != p["rejected"][0]["content"] for p in pairs)
    assert pairs[0]["rejected"][0]["content"] == "a small room in a prison" and pairs[0]["kind"] == "own answer"
    assert counts == {"right (F1 >= 0.3): no pair": 1, "wrong: a pair": 2, "empty answer": 1}
    with pytest.raises(chats.DataError, match="answered 3 of 4 prompts with nothing"):
        chats.on_policy_pairs(rows, ["", "", "", "x"])
    with pytest.raises(chats.DataError, match="4 prompts but 3 answers"):
        chats.on_policy_pairs(rows, answers[:3])


def test_identical_pairs_are_refused_and_over_long_pairs_dropped_and_counted(tok):
    same = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a b"}],
            "rejected": [{"role": "assistant", "content": "a b "}]}
    with pytest.raises(chats.DataError, match="1 of 1 preference pairs have identical chosen and rejected"):
        chats.check_pairs([same])
    short = {**same, "rejected": [{"role": "assistant", "content": "c"}]}
    long = {**same, "rejected": [{"role": "assistant", "content": "word " * 200}]}
    kept, dropped = chats.drop_long_pairs(tok, [short, long], max_length=64)
    assert kept == [short] and dropped == 1


def test_the_held_out_pairs_never_share_a_headword_with_training(monkeypatch):
    """The split is by headword: the words of the held-out prompts (which give the held-out pairs) never occur among
    the SFT or the on-policy training prompts."""
    cfg = S.PROFILES["local"]
    parts, _ = chats.load_rows(cfg)
    train_words = {r["word"].lower() for p in ("sft_train", "policy") for r in parts[p]}
    held_words = {r["word"].lower() for p in ("heldout", "test") for r in parts[p]}
    assert len(parts["heldout"]) == cfg.heldout_rows and not train_words & held_words
    assert parts["heldout"][0]["prompt"][0] == {"role": "system", "content": cfg.system_prompt}


def test_repeat_rate_and_dpo_settings_refuse_bad_values():
    assert measure.repeat_rate("a ray of a ray of a ray of light") == pytest.approx(4 / 8)    # 8 trigrams, 4 distinct
    assert measure.repeat_rate("one two") == 0.0
    with pytest.raises(ValueError, match="dpo.beta must be > 0, got 0"):
        trainers.DPOSettings(beta=0)
    with pytest.raises(ValueError, match="dpo.lr must be > 0, got -1"):
        trainers.DPOSettings(lr=-1)
    with pytest.raises(ValueError, match="sft.lr must be > 0"):
        trainers.SFTSettings(lr=0)
    with pytest.raises(ValueError, match="dpo.beta must be > 0"):
        S.SFTDPOConfig(dpo_search=((0.0, 1e-3),))


def test_more_dpo_steps_than_pairs_warn_with_the_epochs(tok, small_lm, monkeypatch):
    def stop(*a, **k):
        raise RuntimeError("stop")                                       # the warning comes before any training

    monkeypatch.setattr(trainers, "DPOConfig", stop)
    pair = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]}
    with pytest.warns(UserWarning, match=r"10 DPO steps of 4 pairs see each of the 8 training pairs 5.0 times"):
        with pytest.raises(RuntimeError, match="stop"):
            trainers.train_dpo(small_lm(), tok, [pair] * 8, trainers.DPOSettings(steps=10, batch_size=4),
                               trainers.LoraSettings(), 64)


def test_dpo_reference_is_the_model_dpo_starts_from_and_jobs_name_their_arguments(tok, small_lm, monkeypatch):
    """train_dpo hands TRL the merged SFT model with ref_model=None and a fresh LoRA config: TRL's reference is then
    that model with the DPO adapter disabled. A DPO job is a typed spec whose SFT adapter is set by name."""
    from helpers.sft import jobs

    seen = {}

    def stop(**kw):
        seen.update(kw)
        raise RuntimeError("stop")

    monkeypatch.setattr(trainers, "DPOTrainer", stop)
    model = small_lm()
    pair = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]}
    with pytest.raises(RuntimeError, match="stop"):
        trainers.train_dpo(model, tok, [pair] * 8, trainers.DPOSettings(steps=1, batch_size=2),
                           trainers.LoraSettings(r=4, alpha=8), 64)
    assert seen["model"] is model and "ref_model" in seen and seen["ref_model"] is None
    assert seen["peft_config"].r == 4 and seen["args"].precompute_ref_log_probs
    job = jobs.DPOJob(cfg=S.PROFILES["tiny"], settings=trainers.DPOSettings(), data={}, pairs={}, ref={})
    assert job.sft_dir is None and dataclasses.replace(job, sft_dir="x").sft_dir == "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.sft_dir = "y"


def _rec(variant, seed, loss):
    return {"experiment": "sft", "variant": variant, "seed": seed, "metrics": {"test_loss": loss}}


def test_lessons_are_judged_over_training_seeds_by_dunnett_against_their_reference():
    """The baseline's lessons are one many-to-one family: Dunnett (scipy's, by value) on the variance pooled over
    the baseline and its arms with 2+ seeds (df = 2 + 1 + 1 = 4); a one-seed arm is "n = 1: no test" and stays out of
    the family; the accumulation arms (absent here) would be another family against accum-1. Breakages caught:
    Welch per arm with Holm, the one-seed arm pooled in, two references mixed into one family."""
    from scipy import stats

    recs = [_rec("baseline", s, x) for s, x in enumerate((3.10, 3.12, 3.08))] + \
        [_rec("whole-sequence", s, x) for s, x in enumerate((3.50, 3.55))] + \
        [_rec("truncate", s, x) for s, x in enumerate((3.11, 3.07))] + [_rec("plateau", 0, 3.0)]
    rows = {r["arm"]: r for r in R.lesson_rows(recs)}
    assert set(rows) == {"whole-sequence", "truncate", "plateau"}             # accumulation arms absent: not compared
    w = rows["whole-sequence"]
    ref = stats.dunnett((3.50, 3.55), (3.11, 3.07), control=(3.10, 3.12, 3.08), rng=0).pvalue
    assert w["test"] == "Dunnett" and w["df"] == 4 and w["p"] == pytest.approx(ref[0], abs=1e-3)
    assert w["verdict"] == "worse" and rows["truncate"]["verdict"] == "no measurable difference"
    assert rows["plateau"]["verdict"] == "n = 1: no test" and (w["n_a"], w["n_b"]) == (2, 3)
    assert not w["indicative"] and "indicative" not in R.lesson_text(w)
    accum = [_rec("accum-1", s, x) for s, x in enumerate((3.2, 3.25))] + \
        [_rec("accum-4", s, x) for s, x in enumerate((3.4, 3.42))] + \
        [_rec("accum-4-steps", s, x) for s, x in enumerate((3.1, 3.12))]
    rows = {r["arm"]: r for r in R.lesson_rows(recs + accum)}
    assert rows["accum-4"]["reference"] == "accum-1" and rows["accum-4"]["df"] == 3 and rows["accum-4"]["m"] == 2
    assert rows["whole-sequence"]["df"] == 4 and "(n = 2 an arm: indicative)" in R.lesson_text(rows["accum-4"])


def test_accumulation_arms_at_equal_examples_and_equal_steps_and_other_variants_change_one_thing():
    cfg = S.PROFILES["local"]
    arms = {v: C.variant_settings(cfg, v) for v in R.SFT_VARIANTS}
    seen = {v: s.steps * s.batch_size * s.grad_accum for v, s in arms.items()}
    assert seen["accum-1"] == seen["accum-4"] == cfg.accum_examples and seen["accum-4-steps"] == 4 * seen["accum-1"]
    assert arms["accum-4-steps"].steps == arms["accum-1"].steps == 4 * arms["accum-4"].steps
    assert arms["accum-1"].batch_size == arms["accum-4"].batch_size == cfg.accum_micro
    base = dataclasses.asdict(arms["baseline"])
    for v, field in (("whole-sequence", "completion_only"), ("truncate", "long")):
        diff = {k for k, x in dataclasses.asdict(arms[v]).items() if base[k] != x}
        assert diff == {field}
    assert arms["plateau"].plateau_patience == 0 and arms["plateau"].eval_every < arms["baseline"].eval_every
    assert C.sft_key(cfg, "baseline") != C.sft_key(cfg, "truncate")
    assert chats.data_key(dataclasses.replace(cfg, sft=arms["plateau"])) == chats.data_key(cfg)


def test_eval_frequency_reproduces_the_measured_share():
    m = {"steps": 100, "eval_s": 20.0, "wall_s": 120.0}      # 4 evaluations of 5 s, 1 s per training step
    rows = {r["eval every"]: r for r in S.eval_frequency(m, 25)}
    assert rows[25]["source"] == "measured" and rows[25]["eval share"] == pytest.approx(20 / 120)
    assert rows[1]["eval share"] == pytest.approx(500 / 600)
    assert rows[100]["eval share"] == pytest.approx(5 / 105)


def test_lora_parameter_count_matches_peft(small_lm):
    from peft import get_peft_model

    from helpers.planning import lora_params

    model = small_lm()
    lora = trainers.LoraSettings(r=4, alpha=8)
    peft_model = get_peft_model(model, lora.config())
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert lora_params(model.config, lora) == trainable


def test_a_dpo_run_is_labelled_by_all_four_criteria_not_the_preference_alone():
    """success(): preference (>= +10 points, McNemar p < 0.05, >= 300 pairs), no displacement (median log p(chosen)
    change >= 0), answer loss <= SFT + 0.3, F1 >= SFT - 0.02. The preference met and another missed is
    "displacement"; the preference missed is "no preference gain". Breakages caught: a label from the preference
    alone, a pair count never checked, McNemar's p ignored."""
    row = {"points": 44.0, "McNemar p": 1e-40, "pairs": 305, "median chosen change": 0.4, "answer loss - SFT": 0.1,
           "F1 - SFT": 0.0}
    assert SV.success(row)["label"] == "success"
    for key, bad in (("median chosen change", -29.2), ("answer loss - SFT", 1.9), ("F1 - SFT", -0.11)):
        out = SV.success({**row, key: bad})
        assert out["label"] == "displacement" and not out[{"median chosen change": "no displacement",
                                                           "answer loss - SFT": "answer loss",
                                                           "F1 - SFT": "F1"}[key]]
    assert SV.success({**row, "pairs": 299})["label"] == "no preference gain"
    assert SV.success({**row, "McNemar p": 0.06})["label"] == "no preference gain"
    # the change of log p(chosen) per pair, DPO minus the SFT reference, read from the two records' tables
    pairs = {"tables": {"ref.heldout": [{"chosen": -10.0, "rejected": -5.0}, {"chosen": -8.0, "rejected": -9.0}]}}
    dpo = {"tables": {"logps.heldout": [{"chosen": -12.0, "rejected": -20.0}, {"chosen": -7.5, "rejected": -30.0}]}}
    assert list(SV.chosen_change(dpo, pairs)) == [-2.0, 0.5]
