"""Profiles: one code path, four scales.

  tiny       tests and CI: every notebook top to bottom in well under a minute on 2 CPU cores, offline
  local      the default main job on a CPU machine without a model hub: real local data and models, minutes per
             notebook
  gpu-small  one free 16 GB GPU without bf16 (Colab's T4, Kaggle's P100) and ~12 GB of host RAM, with hub access:
             each notebook at the largest scale of its seed that its plan puts under an hour on a T4
  full       the seeds' scale on a large GPU with hub access
  auto       full when a CUDA GPU holds the notebook's full plan (and, on a free card with a session limit, its
             time fits one session), gpu-small when it holds that plan instead, else local
             (helpers.families.auto_profile, which says why)

A notebook's settings are a typed dataclass (validated in __post_init__) with one instance per profile.
`profile_name()` reads the profile asked for (the notebook's PROFILE parameter, else the env var NB_PROFILE, else
auto); `auto` is decided in one place only, per notebook by its plans (helpers.families.profile_for). `settings()`
applies a concrete profile to a settings table: it applies overrides, seeds torch/numpy/random, picks the device
(cuda, then mps, then cpu), switches the hub clients offline in tiny and local, and prints the effective
configuration. Notebooks call helpers.families.resolve, the one public `resolve` (auto decided, then settings(),
then the GPU profiles' memory plans checked); settings() is called directly only with a table of one's own
(benchmarks, tests). This module is read by the torch-free notebook runner and the family registry, so torch is
imported only in the functions that touch it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import hub

PROFILES = ("tiny", "local", "gpu-small", "full")
CHOICES = PROFILES + ("auto",)
GPU_PROFILES = ("gpu-small", "full")      # planned before they run (helpers.planning); they load from the hub


class ProfileError(ValueError):
    pass


def pick_device(prefer: str | None = None) -> str:
    import torch

    if prefer:
        return prefer
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def profile_name(profile: str | None = None) -> str:
    """The profile asked for: explicit argument, else $NB_PROFILE, else "auto", validated against CHOICES. "auto" is
    returned as such: what it runs is decided per notebook, by its plans, in helpers.families.profile_for only."""
    name = (profile or os.environ.get("NB_PROFILE") or "auto").strip().lower()
    if name not in CHOICES:
        raise ProfileError(f"unknown profile '{name}'; allowed: {', '.join(CHOICES)}")
    return name


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def apply_overrides(cfg, overrides: dict, where: str = "settings"):
    """dataclasses.replace with dotted keys for nested settings ({"train.max_steps": 50}); re-validates."""
    flat, nested = {}, {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        (nested.setdefault(head, {}).__setitem__(rest, value) if rest else flat.__setitem__(head, value))
    known = {f.name for f in dataclasses.fields(cfg)}
    bad = sorted((set(flat) | set(nested)) - known)
    if bad:
        raise ProfileError(f"unknown setting(s) {bad} for {where}; allowed: {sorted(known)}")
    for head, sub in nested.items():
        inner = getattr(cfg, head)
        if not dataclasses.is_dataclass(inner):
            raise ProfileError(f"setting '{head}' of {where} has no fields; use '{head}' without a dot")
        flat[head] = apply_overrides(inner, sub, f"{where}.{head}")
    return dataclasses.replace(cfg, **flat)  # re-runs __post_init__ validation


@dataclass
class Run:
    """What `settings()` (and so helpers.families.resolve) returns: the notebook's effective settings plus profile,
    seed and device."""

    notebook: str
    profile: str
    seed: int
    device: str
    cfg: Any
    env: dict = field(default_factory=dict)
    # every record this run's sections wrote or loaded, in order (the notebook's last cell reports them, exactly as
    # Analysis reports the committed ones); shared by the copies with_seed() and the sweep runner make
    records: list = field(default_factory=list, repr=False, compare=False)

    def with_seed(self, seed: int) -> "Run":
        """The same run under another training seed (for records of a multi-seed loop: the seed is in the run id)."""
        return dataclasses.replace(self, seed=seed)

    def collect(self, *records: dict) -> None:
        """Remember records this run wrote or loaded (a newer record of the same run id replaces the older)."""
        for rec in records:
            self.records[:] = [r for r in self.records if r["run_id"] != rec["run_id"]] + [rec]

    def as_dict(self) -> dict:
        return {"notebook": self.notebook, "profile": self.profile, "seed": self.seed, "device": self.device,
                "cfg": dataclasses.asdict(self.cfg)}


def settings(notebook: str, table: dict, profile: str | None = None, seed: int = 0, overrides: dict | None = None,
             device: str | None = None, check_hub: bool = True, quiet: bool = False) -> Run:
    """Apply a concrete profile to a settings table {profile: dataclass instance} and prepare the process (a
    notebook's start is helpers.families.resolve, which decides auto and checks the GPU plans around this)."""
    name = profile_name(profile)
    if name == "auto":
        raise ProfileError(f"{notebook}: profile 'auto' is decided per notebook by its plans "
                           "(helpers.families.resolve); pass one of " + ", ".join(PROFILES))
    missing = [p for p in PROFILES if p not in table]
    if missing:
        raise ProfileError(f"settings table of {notebook} lacks profile(s) {missing}")
    cfg = table[name]
    if overrides:
        cfg = apply_overrides(cfg, overrides, notebook)
    env = hub.go_offline() if name in ("tiny", "local") else {}
    if not os.environ.get("WANDB_SWEEP_ID"):     # a point under `wandb agent` logs (helpers.points); else W&B is off
        os.environ.setdefault("WANDB_MODE", "disabled")
    if name in GPU_PROFILES and check_hub:
        hub.require(f"PROFILE={name}")
    seed_everything(seed)
    run = Run(notebook=notebook, profile=name, seed=seed, device=pick_device(device), cfg=cfg, env=env)
    if not quiet:
        print(f"== {notebook} | profile={run.profile} seed={seed} device={run.device}")
        print(json.dumps(dataclasses.asdict(cfg), indent=1, default=str))
    return run
