"""Hugging Face hub access in one place: which ids the GPU profiles load, whether the hub is reachable, the
offline switches of tiny/local, and one wrapper that turns the clients' many "no network" errors into one message.
"""
from __future__ import annotations

import os
import socket

# every variable that keeps transformers / datasets / huggingface_hub from touching the network
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
HUB_HOST = "huggingface.co"


# Every hub id the GPU profiles (full, gpu-small) use, in one place: what the code loads and what it expects of it
# (splits, columns, vocabulary). The dry runs (tests/dryrun_support.py) build their offline stand-ins from this
# table, and a test compares it with the ids the code actually passes to from_pretrained / load_dataset.
HUB_IDS = {
    # models and tokenizers: vocab = len(tokenizer); embedding rows may be padded beyond it
    "EleutherAI/pythia-410m": {"kind": "tokenizer", "notebooks": ("00", "01", "02", "03"), "vocab": 50277},
    "HuggingFaceTB/SmolLM2-135M-Instruct": {"kind": "model", "notebooks": ("00",), "vocab": 49152},
    "Open-Orca/Mistral-7B-OpenOrca": {"kind": "model", "notebooks": ("04",), "vocab": 32002},
    "HuggingFaceTB/SmolLM2-360M": {"kind": "model", "notebooks": ("04", "06"), "vocab": 49152},
    # datasets: load_dataset(repo, config) or (repo, split=...); the splits and columns the code reads
    "Salesforce/wikitext": {"kind": "dataset", "notebooks": ("00", "01", "02", "03", "04"),
                            "config": "wikitext-2-raw-v1",
                            "splits": ("train", "validation", "test"), "columns": ("text",)},
    "wikimedia/wikipedia": {"kind": "dataset", "notebooks": ("07",), "config": "20231101.ru", "splits": ("train",),
                            "columns": ("id", "url", "title", "text")},
    "openaccess-ai-collective/oo-gpt4-filtered": {"kind": "dataset", "notebooks": ("04",), "config": None,
                                                  "splits": ("train",),
                                                  "columns": ("id", "system_prompt", "question", "response")},
    # chats: messages = [{"role", "content"}, ...]; preferences: chosen / rejected = whole conversations
    "HuggingFaceH4/ultrachat_200k": {"kind": "dataset", "notebooks": ("06",), "config": None,
                                     "splits": ("train_sft", "test_sft"),
                                     "columns": ("prompt", "prompt_id", "messages")},
    "HuggingFaceH4/ultrafeedback_binarized": {"kind": "dataset", "notebooks": ("06",), "config": None,
                                              "splits": ("train_prefs", "test_prefs"),
                                              "columns": ("prompt", "prompt_id", "chosen", "rejected", "messages",
                                                          "score_chosen", "score_rejected")},
}


class HubUnavailable(RuntimeError):
    """The full profile needs the Hugging Face hub and this machine cannot reach it."""


def go_offline() -> dict:
    """Switch the hub clients of this process offline (tiny and local); returns the variables set."""
    os.environ.update(OFFLINE_ENV)
    return dict(OFFLINE_ENV)


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1"


def reachable(host: str = HUB_HOST, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(what: str = "PROFILE=full") -> None:
    """Raise HubUnavailable at once (not in hour two) when the hub is needed, not cached offline, and unreachable."""
    if not is_offline() and not reachable():
        raise HubUnavailable(f"{what} loads its models and data from the Hugging Face hub, and this "
                             f"machine cannot reach {HUB_HOST}. Run PROFILE=local (offline assets) here, or set "
                             "HF_HUB_OFFLINE=1 if the hub files are already in the local HF cache.")


OFFLINE_MARKERS = ("offline", "connect", "resolve", "network", "timed out", "HF_HUB_OFFLINE", "not find",
                   "Max retries", "couldn't", "LocalEntryNotFound", "OfflineModeIsEnabled")


def call(what: str, fn, *args, **kwargs):
    """Run a hub loader (from_pretrained, load_dataset, ...); a connection / offline error becomes HubUnavailable
    naming `what`, any other error passes through unchanged."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the clients raise many unrelated types for "no network"
        text = f"{type(e).__name__}: {e}"
        if any(m.lower() in text.lower() for m in OFFLINE_MARKERS):
            raise HubUnavailable(
                f"{what} must come from the Hugging Face hub, which this machine cannot reach "
                f"({text[:200]}). Use PROFILE=local (offline assets) here, or run the full profile on a machine "
                "with hub access."
            ) from None
        raise
