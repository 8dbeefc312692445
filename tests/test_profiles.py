from dataclasses import dataclass, field

import pytest
import torch

from helpers import hub
from helpers.hub import HubUnavailable
from helpers.profiles import ProfileError, apply_overrides, profile_name, settings


@dataclass
class Inner:
    steps: int = 10

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


@dataclass
class Cfg:
    width: int = 8
    inner: Inner = field(default_factory=Inner)


TABLE = {"tiny": Cfg(1), "local": Cfg(2), "gpu-small": Cfg(4), "full": Cfg(3)}


def test_unknown_profile_names_the_allowed_ones(monkeypatch):
    with pytest.raises(ProfileError, match="unknown profile 'huge'; allowed: tiny, local, gpu-small, full, auto"):
        profile_name("huge")
    monkeypatch.setenv("NB_PROFILE", "bogus")
    with pytest.raises(ProfileError, match="bogus"):
        profile_name(None)


def test_env_var_and_parameter(monkeypatch):
    monkeypatch.setenv("NB_PROFILE", "tiny")
    assert profile_name(None) == "tiny"
    assert profile_name("local") == "local"  # an explicit PROFILE parameter wins
    monkeypatch.delenv("NB_PROFILE")
    assert profile_name(None) == "auto"          # decided per notebook by its plans: helpers.families.profile_for


def test_auto_is_decided_in_one_place_and_resolve_is_the_families_one(monkeypatch):
    """One `auto` rule (helpers.families.auto_profile, through profile_for) and one public `resolve`
    (helpers.families'): the profiles layer neither decides auto nor has a resolve of its own."""
    import helpers.profiles as PR
    from helpers import families as F

    assert not hasattr(PR, "resolve") and F.resolve.__module__ == "helpers.families"
    monkeypatch.delenv("NB_PROFILE", raising=False)
    with pytest.raises(ProfileError, match="decided per notebook by its plans"):
        settings("nb", TABLE, None)
    monkeypatch.setattr(F, "auto_profile", lambda nb: ("local", "stub"))
    assert F.profile_for("05_looped_transformer", None) == ("local", "stub")
    assert F.profile_for("05_looped_transformer", " AUTO ") == ("local", "stub")
    assert F.profile_for("05_looped_transformer", "tiny") == ("tiny", None)


def test_resolve_applies_profile_seeds_and_goes_offline(monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    run = settings("nb", TABLE, "tiny", seed=3, overrides={"inner.steps": 5})
    assert run.cfg == Cfg(1, Inner(5)) and run.profile == "tiny" and run.seed == 3
    assert run.device in ("cpu", "cuda", "mps")
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
    a = torch.rand(3)
    settings("nb", TABLE, "tiny", seed=3, quiet=True)
    assert torch.equal(a, torch.rand(3))  # same seed, same stream
    assert '"width": 1' in capsys.readouterr().out  # the effective configuration is printed


def test_overrides_are_validated():
    with pytest.raises(ProfileError, match=r"unknown setting\(s\) \['depth'\]"):
        apply_overrides(Cfg(), {"depth": 3})
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        apply_overrides(Cfg(), {"inner.steps": 0})


@pytest.mark.parametrize("profile", ["full", "gpu-small"])
def test_a_gpu_profile_without_hub_gives_clear_error(monkeypatch, profile):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "reachable", lambda *a, **k: False)
    with pytest.raises(HubUnavailable, match=f"PROFILE={profile} loads .*PROFILE=local"):
        settings("nb", TABLE, profile)


def test_missing_profile_in_table():
    with pytest.raises(ProfileError, match=r"lacks profile\(s\) \['local', 'gpu-small', 'full'\]"):
        settings("nb", {"tiny": Cfg()}, "tiny")
