"""Hugging Face hub access in one place: which ids the full profile loads, whether the hub is reachable, the
offline switches of tiny/local, and one wrapper that turns the clients' many "no network" errors into one message.
"""
from __future__ import annotations

import os
import socket

# every variable that keeps transformers / datasets / huggingface_hub from touching the network
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
HUB_HOST = "huggingface.co"


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
        raise HubUnavailable(f"{what} loads WikiText-2, Pythia and Open-Orca from the Hugging Face hub, and this "
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
