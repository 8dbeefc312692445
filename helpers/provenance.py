"""Where a result came from: the code (git commit, dirty flag and a hash of the uncommitted diff), the package
versions, the device, and the wall time and peak memory of the work (`Tracker`). Records are written by torch code
and read by torch-free code (Analysis, the README generator), so torch is imported only where it is asked something
(the device's name, the GPU's peak memory)."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from importlib.metadata import PackageNotFoundError, version

from .paths import REPO_ROOT

PACKAGES = ("torch", "transformers", "datasets", "tokenizers", "accelerate", "peft", "trl", "numpy", "pandas")


def _git(*args) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return r.stdout if r.returncode == 0 else None


# outputs, not code: rerunning a notebook rewrites its committed records and Analysis.ipynb, which must not make the
# next record of the same run say that its code was uncommitted
OUTPUTS = (":(exclude)results", ":(exclude)Analysis.ipynb")


def git_state() -> dict:
    """{"commit", "dirty"} and, for a dirty tree, "diff_sha1": a hash of `git diff HEAD` (tracked files, outputs
    excluded), so two records made from the same uncommitted change can be told to share their code."""
    if os.environ.get("LAB_GIT_COMMIT"):
        # a copy of a clean committed tree sent elsewhere (a GPU machine), whose .git may be missing or stale: the
        # sender names the commit it sent
        return {"commit": os.environ["LAB_GIT_COMMIT"], "dirty": False, "sent_copy": True}
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *OUTPUTS)
    out = {"commit": commit.strip() if commit else None, "dirty": bool(status.strip()) if status is not None else None}
    if out["dirty"]:
        diff = _git("diff", "HEAD", "--", ".", *OUTPUTS) or ""
        out["diff_sha1"] = hashlib.sha1(diff.encode()).hexdigest()[:12]
    return out


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def device_name(device: str | None = None) -> str:
    import torch

    if (device or "").startswith("cuda") or (device is None and torch.cuda.is_available()):
        return torch.cuda.get_device_name(0)
    if device == "mps":
        return "Apple MPS"
    # the CPU's model and the kernels torch picked for it (AVX2, AVX512, ...): the same run gives other floats,
    # and an equal-CPU-time budget other step counts, on another CPU
    return (f"cpu: {cpu_model()} x{os.cpu_count()}, {torch.backends.cpu.get_cpu_capability()} "
            f"(torch threads {torch.get_num_threads()})")                           # of the process asking


def cpu_model() -> str:
    """'AMD EPYC', 'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz', ... (/proc/cpuinfo; else what platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect(device: str | None = None) -> dict:
    """Everything a record's provenance holds that does not depend on the run itself."""
    return {**git_state(), "versions": package_versions(), "device": device_name(device)}


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return None


class Tracker:
    """Wall time and peak memory of a block of work.

    GPU: torch.cuda.max_memory_allocated since the start. CPU: the peak resident set size, sampled every 20 ms by a
    background thread (the process-lifetime ru_maxrss would mix in earlier runs of the same notebook kernel).
    """

    def __init__(self, device: str = "cpu", interval: float = 0.02):
        self.device, self.interval = device, interval
        self.wall_s = self.peak_mb = None
        self._stop = threading.Event()

    def __enter__(self):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        self._peak = _rss_mb() or 0.0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_mb() or 0.0)

    def __exit__(self, *exc):
        import torch

        self.wall_s = time.perf_counter() - self._t0
        self._stop.set()
        self._thread.join()
        if self.device.startswith("cuda"):
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
            self.kind = "cuda_max_allocated"
        else:
            self.peak_mb = max(self._peak, _rss_mb() or 0.0)
            self.kind = "process_rss"
        return False

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 3) if self.wall_s is not None else None,
                "peak_mem_mb": round(self.peak_mb, 1) if self.peak_mb is not None else None,
                "peak_mem_kind": getattr(self, "kind", None)}


@contextmanager
def track(device: str = "cpu"):
    t = Tracker(device)
    with t:
        yield t
