"""Host memory and first contact on a GPU: 07's capped train subset, int32 ids and its data preparation in the plan,
its grid's steps per cell, 04's one-draw-at-a-time statistics, and `make run`'s check of every plan against the
machine (a faked one: torch.cuda and planning.host_ram monkeypatched)."""
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import families as F
from helpers import planning as P
from helpers import pretrain as PT
from helpers.memory import GiB
from helpers.pretraining import plan as PP
from helpers.pretraining.config import PROFILES


def test_07_gpu_small_plan_fits_colabs_host_memory_with_its_data_preparation():
    t4 = P.CARDS["t4"]
    p = F.plan("07_pretraining", profile="gpu-small").on(t4)
    assert 0 < p.host <= t4.host_gib * 1e9                     # Colab's 12.7 GB (not GiB)
    prep = [s for what, s in p.work if what.startswith("data preparation")]
    assert prep and prep[0] > 0 and p.estimate_s <= 3600
    full = F.plan("07_pretraining")
    assert full.host == PROFILES["full"].lm.train_tokens * PP.PREP_BYTES_PER_TOKEN <= 100 * GiB


@pytest.mark.parametrize("profile,card", [("gpu-small", "t4"), ("full", None)])
def test_07_every_grid_cell_gets_ten_warmups_of_steps_and_the_subset_covers_the_longest_run(profile, card):
    cfg, b = PROFILES[profile], P.bench()
    card = card and P.CARDS[card]
    steps = PP.steps_per_cell(b, cfg, card)
    assert len(steps) == 12
    short = {c: round(s) for c, s in steps.items() if s < PP.MIN_WARMUPS * cfg.lm.train.warmup_steps}
    assert not short, short
    assert cfg.lm.train_tokens >= PP.CAP_MARGIN * PP.run_tokens(b, cfg, card)


def test_int32_ids_give_the_int64_references_bitwise_past_2_to_the_31_pair_codes(monkeypatch):
    """A 60k vocabulary: a * V + b exceeds 2^31 (int32 pair codes would wrap); the references must be those of
    int64 ids, bit for bit."""
    rng = np.random.default_rng(0)
    V = 60_000
    train = {"input_ids": rng.integers(V - 50, V, size=(40, 16)).tolist()}
    ev = {"input_ids": rng.integers(V - 50, V, size=(8, 16)).tolist()}
    assert PT._ids(train).dtype == np.int32
    got = (PT.unigram_cross_entropy(train, ev, V), PT.bigram_cross_entropy(train, ev, V))
    monkeypatch.setattr(PT, "IDS", np.int64)
    assert (PT.unigram_cross_entropy(train, ev, V), PT.bigram_cross_entropy(train, ev, V)) == got


def test_04_full_plan_holds_one_calibration_draw_on_the_host():
    p = F.plan("04_lowrank_compression")
    assert p.host <= 100 * GiB, p.host / GiB


def test_release_calibration_frees_draw_0_and_recomputes_it_only_when_read(monkeypatch):
    from helpers.compression import whitening as W

    calls = []
    monkeypatch.setattr(W, "calibrate", lambda *a: calls.append(a) or {"x": 1})
    monkeypatch.setattr(W.C, "block_modules", lambda model: {})
    data = {"model": "m", "calib_batches": ["b"], "stats": {"x": 1}}
    W.release_calibration(data)
    assert isinstance(data["stats"], W.Recalibrated) and not calls       # freed, nothing computed yet
    assert dict(data["stats"]) == {"x": 1} and len(calls) == 1
    W.release_calibration(data)
    assert len(calls) == 1


def _machine(monkeypatch, name: str, gib: float, host_gib: float, capability: tuple[int, int] = (9, 0)):
    """torch.cuda on a machine with this card (an H100's capability unless told), driven by a CUDA 12.8+ build."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"])
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i=0: SimpleNamespace(name=name, total_memory=int(gib * GiB),
                                                    major=capability[0], minor=capability[1]))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
    monkeypatch.setattr(P, "host_ram", lambda: int(host_gib * GiB))


def test_check_all_every_full_notebook_fits_one_h100_on_a_128_gib_host(monkeypatch):
    _machine(monkeypatch, "NVIDIA H100 80GB HBM3", 79.2, 128)
    assert F.check_all("full") == []


def test_check_all_names_what_does_not_fit_a_t4_on_a_12_gb_host_and_the_override(monkeypatch):
    _machine(monkeypatch, "Tesla T4", 14.6, 12.7 * 1e9 / GiB, (7, 5))
    problems = F.check_all("full")
    text = "\n".join(problems)
    assert "04_lowrank_compression" in text and "GPU memory" in text and "host memory" in text
    assert "PROFILE=gpu-small" in text and "OVERRIDES" in text
    assert F.check_all("local") == []                              # CPU profiles: nothing to check


def test_make_run_stops_before_the_first_notebook_when_a_plan_does_not_fit(monkeypatch):
    from helpers import notebooks as N

    monkeypatch.setattr(N, "check_all", lambda profile, nbs: ["04_lowrank_compression: too big"])
    monkeypatch.setattr(N, "git_state", lambda: {})
    started = []
    monkeypatch.setattr(N, "execute", lambda *a, **k: started.append(a))
    with pytest.raises(N.NotebookError, match="does not fit this machine"):
        N.run_all("full")
    assert not started


def test_check_all_names_a_gpu_this_torch_cannot_drive_first(monkeypatch):
    """A P100 (sm_60) under a CUDA 12.8+ build: `make run` stops before the first notebook, saying why."""
    _machine(monkeypatch, "Tesla P100-PCIE-16GB", 15.9, 32, (6, 0))
    problems = F.check_all("gpu-small")
    assert len(problems) == 1 and "sm_60" in problems[0] and "GPU T4 x2" in problems[0]


def test_make_run_executes_analysis_in_place_only_on_the_repositorys_own_records(tmp_path, monkeypatch):
    """Breakage caught: `helpers notebooks --nb 06` with LAB_RESULTS pointing at a scratch folder rewrote the
    committed Analysis.ipynb with those records (it happened); now a copy under runs/<profile>/ is executed."""
    from helpers import notebooks as N

    monkeypatch.setattr(N, "git_state", lambda: {})
    monkeypatch.setattr(N, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(N, "ANALYSIS", tmp_path / "Analysis.ipynb")
    (tmp_path / "Analysis.ipynb").write_text("committed")
    executed = []
    monkeypatch.setattr(N, "execute_analysis", lambda path, **k: executed.append(path) or 0.0)
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "scratch"))
    monkeypatch.setattr(N, "list_notebooks", lambda select="": [])
    N.run_all("tiny", analysis=True, quiet=True)
    assert executed == [tmp_path / "runs" / "tiny" / "Analysis.ipynb"]
    assert executed[0].read_text() == "committed"
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))
    N.run_all("tiny", analysis=True, quiet=True)
    assert executed[1] == tmp_path / "Analysis.ipynb"
