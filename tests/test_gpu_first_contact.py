"""First contact on a GPU, faked at the torch.cuda level only (this machine has none; our own wrappers are never
replaced, so a wrong one fails here): bf16 by compute capability, not by torch's emulation-inclusive
is_bf16_supported(); a GPU this torch has no kernels for stops before any work; the card table matches each card's
variant; `auto` on a session-limited card holds the full plan to gpu-small's one hour."""
import contextlib

import pytest
import torch

from helpers import families as F
from helpers import planning as P
from helpers import precision as PR
from helpers.memory import GiB

# torch 2.13's CUDA 12.8+ wheels: no sm_50 / sm_60 / sm_70 (Maxwell, Pascal, Volta)
ARCHS_CU128 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
# a CUDA 12.6 build, the last with Volta's sm_70
ARCHS_CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
# name, compute capability, memory (GiB), whether the card has bf16, the torch build it is driven by
CARDS = {"T4": ("Tesla T4", (7, 5), 15.0, False, ARCHS_CU128),
         "V100": ("Tesla V100-SXM2-16GB", (7, 0), 16.0, False, ARCHS_CU126),
         "A100": ("NVIDIA A100-SXM4-40GB", (8, 0), 40.0, True, ARCHS_CU128),
         "H100": ("NVIDIA H100 80GB HBM3", (9, 0), 80.0, True, ARCHS_CU128)}


def fake_gpu(monkeypatch, name: str, capability: tuple[int, int], gib: float, archs=ARCHS_CU128):
    """torch.cuda as it is on a machine with this card, including is_bf16_supported()'s default True on a T4 or V100
    (including_emulation=True: a bf16 tensor can be made there)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: type(
        "P", (), {"name": name, "total_memory": int(gib * GiB), "major": capability[0], "minor": capability[1]}))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation or capability >= (8, 0))
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(archs))


@pytest.mark.parametrize("card", list(CARDS))
def test_precision_follows_the_compute_capability_not_bf16_emulation(monkeypatch, capsys, card):
    """On a T4 / V100 torch.cuda.is_bf16_supported() says True (emulation), but bf16 there has no tensor cores: the
    Trainer's flags, the load dtype, the inference autocast and the plan all say fp16 mixed precision; on an A100 /
    H100, bf16 everywhere. Breaks if bf16_available trusts is_bf16_supported()."""
    name, capability, gib, bf16, archs = CARDS[card]
    fake_gpu(monkeypatch, name, capability, gib, archs)
    assert torch.cuda.is_bf16_supported()                       # what the old rule read: True on every card here
    assert PR.bf16_available("cuda") is bf16 and PR.bf16_available("cuda:0") is bf16
    mode = PR.effective_precision("auto", "cuda")
    assert mode == PR.precision_for("auto", cuda=True, bf16=bf16) == ("bf16-autocast" if bf16 else "fp16-amp")
    flags = PR.trainer_precision("cuda")
    assert (flags["bf16"], flags["fp16"], flags["use_cpu"]) == (bf16, not bf16, False)
    assert PR.model_dtype("cuda") == (torch.bfloat16 if bf16 else torch.float32)
    ctx = PR.inference_autocast("cuda")
    if bf16:
        assert isinstance(ctx, contextlib.nullcontext)
    else:
        assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.float16 and ctx.device == "cuda"
    # the card table says the same, and the plan resolve prints is made in that precision
    known = P.card_of(name)
    if known is not None:
        assert known.bf16 is bf16 and PR.precision_for("auto", True, known.bf16) == mode
    assert known is not None or card == "V100"
    run = F.resolve("00_data_and_baselines", "full", check_hub=False, quiet=False, overrides={})
    printed = capsys.readouterr().out
    assert run.device == "cuda" and "NeoX from scratch: 6.0 GiB = " in printed
    assert f"[{mode}, batch 8 x 1024]" in printed


def test_a_p100_stops_before_any_work_naming_card_sm_archs_and_fix(monkeypatch):
    """A P100 (sm_60) with torch 2.13's CUDA 12.8+ build: resolve stops at once (before the study, its settings or
    its plans are touched), naming the card, sm_60, the archs this torch has, and Kaggle's T4 x2; so does auto (the
    notebook runner's choice). Breaks if the check is missing, runs after the work, or misreads the arch list."""
    fake_gpu(monkeypatch, "Tesla P100-PCIE-16GB", (6, 0), 16.0)
    touched = []
    monkeypatch.setattr(F.profiles, "settings", lambda *a, **k: touched.append("settings"))
    monkeypatch.setattr(F, "plan", lambda *a, **k: touched.append("plan"))
    for profile in ("gpu-small", "full", "local", "auto"):
        with pytest.raises(F.UnsupportedGPU) as err:
            F.resolve("01_attention_lowrank", profile, check_hub=False, quiet=True)
        msg = str(err.value)
        assert "Tesla P100-PCIE-16GB" in msg and "sm_60" in msg and ", ".join(ARCHS_CU128) in msg
        assert '"GPU T4 x2"' in msg and "a torch build with sm_60" in msg
    assert touched == []
    with pytest.raises(F.UnsupportedGPU, match="sm_60"):
        F.auto_profile("01_attention_lowrank")
    F.check_gpu("cpu")                                          # a CPU run on that machine is not stopped
    # a torch that still builds sm_60 (or PTX at or below it) drives it
    fake_gpu(monkeypatch, "Tesla P100-PCIE-16GB", (6, 0), 16.0, archs=["sm_50", "sm_60", "sm_70"])
    F.check_gpu()
    fake_gpu(monkeypatch, "Tesla P100-PCIE-16GB", (6, 0), 16.0, archs=["sm_75", "compute_50"])
    F.check_gpu()


def test_a_t4_with_sm_75_in_the_list_passes(monkeypatch, capsys):
    fake_gpu(monkeypatch, "Tesla T4", (7, 5), 15.0)
    F.check_gpu()
    F.check_gpu("cuda:0")
    run = F.resolve("01_attention_lowrank", "gpu-small", check_hub=False, quiet=True, overrides={})
    assert run.device == "cuda"
    fake_gpu(monkeypatch, "Tesla T4", (7, 5), 15.0, archs=["sm_80", "sm_86", "sm_90"])
    with pytest.raises(F.UnsupportedGPU, match=r"Tesla T4 \(compute capability 7.5, sm_75\)"):
        F.check_gpu()


@pytest.mark.parametrize("capability, archs, ok", [
    ((7, 5), ["sm_75"], True),
    ((8, 9), ["sm_80", "sm_86", "sm_90"], True),              # an L4: sm_86 cubins run on 8.9 (same major)
    ((8, 6), ["sm_89"], False),                               # a later minor's cubin does not run on an earlier one
    ((9, 0), ["sm_80"], False),                               # nor a cubin across majors
    ((9, 0), ["compute_80"], True),                           # PTX: JIT-compiled for any device at or above it
    ((7, 5), ["compute_80"], False),
    ((9, 0), ["sm_90a"], True), ((10, 0), ["sm_90a", "compute_90a"], False),   # arch-specific: that sm only
    ((6, 0), ARCHS_CU128, False), ((7, 0), ARCHS_CU128, False), ((12, 0), ARCHS_CU128, True),
    ((12, 1), ARCHS_CU128, True), ((6, 0), [], True),                          # no list (CPU / ROCm build)
])
def test_arch_rule(capability, archs, ok):
    assert F.arch_supported(capability, archs) is ok


def test_each_card_variant_is_planned_at_its_own_figures():
    """Most specific first: the H100's SXM / PCIe / NVL, the A100's 40 / 80 GB, the L4 (offered by Colab, with a
    session limit), the T4 (with the rate it sustains). Breaks if a variant falls to another entry."""
    names = {"NVIDIA H100 80GB HBM3": "h100", "NVIDIA H100 PCIe": "h100 pcie", "NVIDIA H100 NVL": "h100 nvl",
             "NVIDIA A100-SXM4-40GB": "a100 40gb", "NVIDIA A100-PCIE-40GB": "a100 40gb",
             "NVIDIA A100-SXM4-80GB": "a100", "NVIDIA A100 80GB PCIe": "a100", "NVIDIA L4": "l4",
             "NVIDIA L40S": "l40s", "NVIDIA L40": "l40", "Tesla T4": "t4", "NVIDIA GH200 480GB": "gh200",
             "NVIDIA H200 NVL": "h200 nvl", "Tesla P100-PCIE-16GB": "p100"}
    for name, key in names.items():
        assert P.card_of(name) is P.CARDS[key], name
    figures = {key: (c.memory_gib, c.peak_tflops, c.fp32_tflops, c.fp64_tflops) for key, c in P.CARDS.items()}
    assert figures["h100"] == (80.0, 989.4, 66.9, 66.9) and figures["h100 pcie"] == (80.0, 756.0, 51.2, 51.2)
    assert figures["h100 nvl"] == (94.0, 835.0, 60.0, 60.0)
    assert figures["a100 40gb"] == (40.0, 312.0, 19.5, 19.5) and figures["a100"] == (80.0, 312.0, 19.5, 19.5)
    assert figures["l4"] == (24.0, 121.0, 30.3, pytest.approx(0.473, abs=1e-3))
    assert figures["t4"] == (15.0, 65.0, 8.1, 0.25)
    l4, t4 = P.CARDS["l4"], P.CARDS["t4"]
    assert l4.bf16 and l4.offered_by == "Colab" and l4.session_h is not None
    assert t4.sustained_tflops == 24.0 and t4.tflops("16-bit") == 65.0     # the plan's times stay at the peak
    slow = F.plan("01_attention_lowrank", profile="gpu-small").on(t4)
    assert slow.at_sustained_s() == pytest.approx(slow.estimate_s * 65 / 24)
    assert f"this card sustains on a long 16-bit matmul (not its 65 peak): up to {slow.at_sustained_s() / 3600:.1f} h" \
        in slow.text()
    assert F.plan("01_attention_lowrank", profile="gpu-small").on(l4).at_sustained_s() is None


def test_auto_on_a_session_limited_card_holds_the_full_plan_to_gpu_smalls_hour(monkeypatch):
    """00's full plan fits a T4's memory and its 1.5 h fit a 12-hour Colab session, but not gpu-small's one hour:
    auto runs gpu-small there; the same card with no session limit known runs full. Breaks if auto compares with
    the session."""
    monkeypatch.delenv("NB_PROFILE", raising=False)
    fake_gpu(monkeypatch, "Tesla T4", (7, 5), 15.0)
    t4 = P.CARDS["t4"]
    hours = F.plan("00_data_and_baselines", bf16=False).on(t4).wall_s() / 3600
    assert P.GPU_SMALL_TARGET_H < hours < t4.session_h
    profile, why = F.auto_profile("00_data_and_baselines")
    assert profile == "gpu-small", why
    assert f"it plans {hours:.1f} h on this card, more than the 1 h per notebook gpu-small promises" in why
    assert F.profile_for("00_data_and_baselines", "auto")[0] == "gpu-small"
    fake_gpu(monkeypatch, "a 15 GB workstation card", (7, 5), 15.0)     # no session limit known: full
    assert F.auto_profile("00_data_and_baselines")[0] == "full"
