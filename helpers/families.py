"""The family registry: which notebooks make up each experiment family, and where its code lives.

Every family is a package under helpers/ with a study module (`helpers.<package>.study`: typed config and PROFILES,
the jobs and the record-keyed sections, the GPU planner `full_plan`) and a report module (`helpers.<package>.report`:
tables, figures, the conclusion and `report(records)` of its records, torch-free). Analysis.ipynb, the generated
blocks of README.md and docs/results.md, the GPU plans, the notebook runner, the CLI and the tests all read this one
table.

    run = families.resolve("05_looped_transformer", PROFILE, seed=SEED, overrides=OVERRIDES)   # a notebook's start
    families.reports(records)["05_looped_transformer"].show()                                  # Analysis.ipynb

Report modules are imported here (Analysis needs them and they need no torch); a study module is imported by name
on first use (it imports torch), so reading results never loads a model library.
"""
from __future__ import annotations

import dataclasses
import importlib
import re
from dataclasses import dataclass
from types import ModuleType

from . import planning, precision, profiles
from .analysis import Report
from .baselines import report as baselines_report
from .compression import report as compression_report
from .looped import report as looped_report
from .pretraining import report as pretraining_report
from .sft import report as sft_report
from .surgery import report as surgery_report


@dataclass(frozen=True)
class Family:
    notebooks: tuple[str, ...]
    package: str                    # the family's package under helpers (its study module is imported on demand)
    report: ModuleType              # its report module, helpers.<package>.report
    readme: str | None = None       # the docs/results.md block its report writes (<!-- results:NAME -->), if any

    @property
    def title(self) -> str:
        return self.report.TITLE

    def study_module(self) -> ModuleType:
        return importlib.import_module(f"helpers.{self.package}.study")

    def records(self, records: list[dict]) -> list[dict]:
        return [r for r in records if r["notebook"] in self.notebooks]


# each notebook name is spelled once, in its family's report module (NOTEBOOK, or surgery's NOTEBOOKS); shared
# modules read the names from here (NOTEBOOKS, family(), notebooks_of())
FAMILIES = (
    Family((baselines_report.NOTEBOOK,), "baselines", baselines_report),
    Family(surgery_report.NOTEBOOKS, "surgery", surgery_report, "seed000"),
    Family((compression_report.NOTEBOOK,), "compression", compression_report, "seed001"),
    Family((looped_report.NOTEBOOK,), "looped", looped_report, "seed002"),
    Family((sft_report.NOTEBOOK,), "sft", sft_report, "seed004"),
    Family((pretraining_report.NOTEBOOK,), "pretraining", pretraining_report, "seed003"),
)
NOTEBOOKS = tuple(nb for f in FAMILIES for nb in f.notebooks)


def family(notebook: str) -> Family:
    for f in FAMILIES:
        if notebook in f.notebooks:
            return f
    raise ValueError(f"unknown notebook '{notebook}'; allowed: {', '.join(NOTEBOOKS)}")


def notebooks_of(package: str) -> tuple[str, ...]:
    """The notebooks of the family whose package is `package` ("baselines" -> ("00_data_and_baselines",))."""
    for f in FAMILIES:
        if f.package == package:
            return f.notebooks
    raise ValueError(f"unknown family '{package}'; allowed: {', '.join(f.package for f in FAMILIES)}")


def reports(records: list[dict]) -> dict[str, Report]:
    """{notebook: its family's Report of the records}; the notebooks of one family share one report."""
    out = {}
    for f in FAMILIES:
        rep = f.report.report(f.records(records))
        out.update({nb: rep for nb in f.notebooks})
    return out


# ------------------------------------------------------------------------------------------------ starting a run
def resolve(notebook: str, profile: str | None = None, seed: int = 0, overrides: dict | None = None,
            device: str | None = None, check_hub: bool = True, quiet: bool = False) -> profiles.Run:
    """A notebook's start (the one public `resolve`): the profile (auto decided by profile_for), its family's settings
    for it (profiles.settings), and in a GPU profile (full,
    gpu-small) the memory plan and time estimate first, so that a run which cannot fit this GPU stops here, not in
    hour two; and first of all, a GPU this torch has no kernels for stops before anything (check_gpu)."""
    check_gpu(device)
    study = family(notebook).study_module()
    profile, why = profile_for(notebook, profile)
    if why and not quiet:
        print(f"profile auto -> {profile}: {why}", flush=True)
    run = profiles.settings(notebook, study.PROFILES, profile, seed, overrides, device, check_hub, quiet)
    if run.profile in profiles.GPU_PROFILES:
        # the full profile planned in the precision this device trains in (fp16 mixed precision, fp32 weights, on a
        # T4: the same rule, helpers.precision, as the Trainer's flags); gpu-small is planned without bf16 everywhere
        bf16 = run.profile == "full" and precision.bf16_available(run.device)
        p = on_this_card(plan(notebook, cfg=run.cfg, profile=run.profile, bf16=bf16))
        if not quiet:
            print(p.text(), flush=True)
        planning.check(p, run.device)
    return run


def profile_for(notebook: str, profile: str | None = None) -> tuple[str, str | None]:
    """The profile a notebook runs (explicit, else $NB_PROFILE, else auto) and, where auto chose it, why: the one
    decision that a notebook's start and the notebook runner's cell timeouts share, and the only place `auto` is
    decided (profiles.profile_name reads and validates the name; auto_profile decides it)."""
    name = profiles.profile_name(profile)
    return auto_profile(notebook) if name == "auto" else (name, None)


class UnsupportedGPU(RuntimeError):
    """The CUDA GPU in use has a compute capability this torch build has no kernels for."""


def arch_supported(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a torch built for `arch_list` (torch.cuda.get_arch_list(): 'sm_75', 'sm_90a', 'compute_90', ...) runs
    on a device of `capability`: a cubin sm_XY runs on X.Y and later minors of major X (an sm_86 build on an L4's
    8.9); PTX compute_NN is compiled by the driver for any device at or above NN; arch-specific cubins and PTX
    (sm_90a, compute_100a: no forward compatibility) on that capability only; sm_100f-style family cubins on that
    major from that minor on. An empty list (a CPU or ROCm build) decides nothing: True."""
    if not arch_list:
        return True
    major, minor = capability
    for arch in arch_list:
        m = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", arch.strip().lower())
        if not m:
            continue
        kind, a_major, a_minor, suffix = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        if suffix == "a":
            ok = (a_major, a_minor) == (major, minor)
        elif kind == "compute" and not suffix:
            ok = (a_major, a_minor) <= (major, minor)
        else:                                               # sm_XY, sm_XYf, compute_XYf: within the major
            ok = a_major == major and a_minor <= minor
        if ok:
            return True
    return False


def check_gpu(device: str | None = None) -> None:
    """Stop at once, before any work, where the CUDA GPU that `device` names (None: the one a run would pick, the
    first CUDA GPU where there is one) has a compute capability this torch has no kernels for (a P100, sm_60, under
    torch 2.13's CUDA 12.8+ wheels): naming the card, its sm, the archs this torch has, and the fix. Called by
    resolve (every notebook's start) and by auto_profile (the notebook runner's choice of profile); nothing to do
    without a CUDA GPU or on a CPU device."""
    import torch  # here, not at the top: this registry is read by torch-free code (Analysis, the README)

    if device is not None and not str(device).startswith("cuda"):
        return
    if not torch.cuda.is_available():
        return
    index = torch.device(device).index if device else None
    index = 0 if index is None else index
    major, minor = torch.cuda.get_device_capability(index)
    archs = list(torch.cuda.get_arch_list())
    if arch_supported((major, minor), archs):
        return
    name = torch.cuda.get_device_name(index)
    raise UnsupportedGPU(
        f"this {name} (compute capability {major}.{minor}, sm_{major}{minor}) cannot run this torch "
        f"{torch.__version__}, which has kernels for {', '.join(archs)} only. On Kaggle, choose the \"GPU T4 x2\" "
        f"accelerator (sm_75); elsewhere, use a GPU this torch supports or a torch build with sm_{major}{minor} "
        f"(https://pytorch.org/get-started/locally/)")


def this_card() -> planning.Card | None:
    """planning.CARDS' entry of the CUDA GPU this process runs on (a T4, P100, ...), or None: no GPU, or a card the
    table does not know (its plans are then shown on the benchmark's card)."""
    import torch  # here, not at the top: this registry is read by torch-free code (Analysis, the README)

    return planning.card_of(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None


def auto_profile(notebook: str) -> tuple[str, str]:
    """What `auto` runs for this notebook here, and why: full where a CUDA GPU holds the full plan's largest step,
    this machine's RAM its host memory and, on a card offered with a session limit (Colab's T4 and L4), the full
    plan within gpu-small's promise of an hour per notebook (planning.GPU_SMALL_TARGET_H; not the 12-hour session:
    00's full plan is 1.5 h on a T4, 05's weeks); gpu-small where the GPU holds that profile's plan instead; else
    local (no CUDA GPU, or one too small even for gpu-small: the CPU scale then runs on it). A GPU this torch cannot
    drive stops here (check_gpu)."""
    import torch  # here, not at the top: this registry is read by torch-free code (Analysis, the README)

    if not torch.cuda.is_available():
        return "local", "no CUDA GPU"
    check_gpu()
    props = torch.cuda.get_device_properties(0)
    have = props.total_memory / planning.GiB
    bench = planning.bench_records()                    # read once for both plans
    full_plan = plan(notebook, bench, bf16=precision.bf16_available("cuda"))     # as resolve plans it here
    full, small = full_plan.peak, plan(notebook, bench, profile="gpu-small").peak
    step = f"the full plan's largest step ({full.name}) needs {full.total / planning.GiB:.1f} GiB"
    ram = planning.host_ram()
    card = this_card()
    hours = None if card is None or card.session_h is None else (full_plan.on(card).wall_s() or 0) / 3600
    if full.fits(have) and full_plan.host <= ram and (hours is None or hours <= planning.GPU_SMALL_TARGET_H):
        return "full", f"{step}; this {props.name} has {have:.1f} GiB"
    if not full.fits(have):
        step += f", more than this {props.name} ({have:.1f} GiB) holds"
    elif full_plan.host > ram:
        step += (f" (this {props.name} has {have:.1f} GiB), but its {full_plan.host / planning.GiB:.1f} GiB of host "
                 f"memory is more than this machine's {ram / planning.GiB:.1f} GiB")
    else:
        step += (f" (this {props.name} has {have:.1f} GiB), but it plans {hours:.1f} h on this card, more than the "
                 f"{planning.GPU_SMALL_TARGET_H:g} h per notebook gpu-small promises on a card with sessions of at "
                 f"most {card.session_h:g} h ({card.offered_by})")
    if small.fits(have):
        return "gpu-small", (f"{step}; gpu-small's largest step ({small.name}) needs {small.total / planning.GiB:.1f} "
                             "GiB (PROFILE='full' with OVERRIDES forces the full scale)")
    return "local", (f"{step}, and so does gpu-small's ({small.name}, {small.total / planning.GiB:.1f} GiB): the "
                     "CPU-scale local profile runs on it")


# ------------------------------------------------------------------------------------------------ plans
def plan(notebook: str, records: list[dict] | None = None, cfg=None, profile: str = "full",
         bf16: bool | None = None) -> planning.NotebookPlan:
    """The plan of a notebook's GPU profile (full or gpu-small), or of `cfg`, that profile's config with the user's
    overrides; the family's planner (`full_plan`) plans any config of its study. `bf16`: whether the card has it
    (None: the profile's own card, bf16 for full, none for gpu-small)."""
    if profile not in profiles.GPU_PROFILES:
        raise ValueError(f"plans exist for the GPU profiles only ({', '.join(profiles.GPU_PROFILES)}), not "
                         f"'{profile}'")
    study = family(notebook).study_module()
    # gpu-small is planned for the cards it is sized for, which have no bf16 (fp32 weights where full keeps bf16)
    bf16 = profile == "full" if bf16 is None else bf16
    made = study.full_plan(notebook, planning.bench(records), cfg or study.PROFILES[profile], bf16=bf16)
    return dataclasses.replace(made, profile=profile)


def all_plans(records: list[dict] | None = None, profile: str = "full") -> list[planning.NotebookPlan]:
    if records is None:
        records = planning.bench_records()
    return [plan(nb, records, profile=profile) for nb in NOTEBOOKS]


def on_this_card(p: planning.NotebookPlan) -> planning.NotebookPlan:
    """The plan with its times on the GPU in use where planning.CARDS knows it (a P100's 16-bit steps plan 106x the
    H100's times), else as planned on the benchmark's card."""
    card = this_card()
    return p if card is None else p.on(card)


def cell_timeout(notebook: str, profile: str) -> int:
    """The notebook runner's per-cell limit: one hour in tiny/local, TIMEOUT_FACTOR x the estimate on this GPU (where
    CARDS knows it) in a GPU profile, so that a P100's six hours of gpu-small's 06 are not cut at the H100's."""
    if profile not in profiles.GPU_PROFILES or notebook not in NOTEBOOKS:
        return planning.MIN_TIMEOUT_S
    return on_this_card(plan(notebook, profile=profile)).timeout_s()


# ------------------------------------------------------------------------------------------------ before `make run`
def check_all(profile: str, notebooks=None) -> list[str]:
    """Every notebook's plan in a GPU profile against this machine, before the first notebook starts: one line per
    notebook whose largest step does not fit this GPU's memory (HEADROOM) or whose host memory exceeds this
    machine's RAM (planning.host_ram), each with the override that would make it fit; [] when all fit, or when there
    is no CUDA GPU to check against (the notebooks then refuse to start on their own)."""
    import torch  # here, not at the top: this registry is read by torch-free code

    from .memory import HEADROOM

    if profile not in profiles.GPU_PROFILES or not torch.cuda.is_available():
        return []
    try:
        check_gpu()                   # a GPU this torch has no kernels for (a P100) is the first thing to say
    except UnsupportedGPU as e:
        return [str(e)]
    props = torch.cuda.get_device_properties(0)
    gib, ram = props.total_memory / planning.GiB, planning.host_ram()
    records = planning.bench_records()
    smaller = " or PROFILE=gpu-small" if profile == "full" else ""
    problems = []
    for nb in notebooks or NOTEBOOKS:
        p = plan(nb, records, profile=profile)
        for m in p.memory:
            if not m.fits(gib):
                problems.append(f"{nb}: {m.name} needs {m.total / planning.GiB:.1f} GiB of GPU memory [{m.setting}]; "
                                f"this {props.name} has {gib:.1f} GiB (fits at <= {HEADROOM:.0%}): lower it with a "
                                "smaller micro-batch and more accumulation (train.batch_size / train.grad_accum) or "
                                f"train.gradient_checkpointing=True in OVERRIDES{smaller}")
        if p.host > ram:
            problems.append(f"{nb}: plans {p.host / planning.GiB:.1f} GiB of host memory; this machine has "
                            f"{ram / planning.GiB:.1f} GiB: lower it with " + _host_override(nb, profile))
    return problems


def _host_override(notebook: str, profile: str) -> str:
    """The override that lowers a notebook's host memory (what its plan counts there)."""
    hints = {"07_pretraining": "a smaller train subset, OVERRIDES={'lm.train_tokens': N} (48 bytes a token: "
                               "helpers.pretraining.plan)"}
    if notebook in hints:
        return hints[notebook] + (" or PROFILE=gpu-small" if profile == "full" else "")
    # elsewhere the host memory is the model's float64 statistics and offloaded bases: a smaller model
    return "PROFILE=gpu-small (its smaller models)" if profile == "full" else "a machine with more RAM"

