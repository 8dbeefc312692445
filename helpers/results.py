"""The results store: one JSON record per run at results/<notebook-stem>/<run_id>.json.

Record fields (SCHEMA_VERSION 1): schema_version, run_id, notebook, experiment, variant, profile, seed, config
(resolved), metrics, curves ({name: {step: value}}), params ({name: count}), provenance (git commit and dirty flag,
package versions, device, wall time, peak memory, tokens/s where relevant), status, created.

run_id = <variant slug>-<sha1 of the canonical config JSON, 10 hex>-s<seed>: deterministic, so rerunning the same
config overwrites its own record, and a different config can never land on the same id (a hash collision is
detected and refused). Writes are atomic (temp file in the same folder + os.replace): a crash never leaves a
half-written record or destroys the previous one.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .paths import REPO_ROOT, results_dir

SCHEMA_VERSION = 1
REQUIRED = ("schema_version", "run_id", "notebook", "experiment", "variant", "profile", "seed", "config", "metrics",
            "curves", "params", "provenance", "status")
STATUSES = ("ok", "failed", "partial")
PACKAGES = ("torch", "transformers", "datasets", "tokenizers", "accelerate", "peft", "trl", "numpy", "pandas")


class ResultsError(RuntimeError):
    pass


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: dict) -> str:
    return hashlib.sha1(canonical(config).encode()).hexdigest()[:10]


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")
    return s[:80] or "run"


def run_id(variant: str, config: dict, seed: int) -> str:
    return f"{slug(variant)}-{config_hash(config)}-s{seed}"


# ------------------------------------------------------------------------------------------------ provenance
def git_state() -> dict:
    def git(*args):
        r = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

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
    return f"cpu: {platform.processor() or platform.machine()} x{os.cpu_count()} (torch threads {torch.get_num_threads()})"


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


# ------------------------------------------------------------------------------------------------ write / read
def validate(record: dict) -> None:
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ResultsError(f"record lacks field(s) {missing}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise ResultsError(f"schema_version {record['schema_version']!r}; this code reads {SCHEMA_VERSION}")
    if record["status"] not in STATUSES:
        raise ResultsError(f"status {record['status']!r}; allowed: {STATUSES}")
    for k in ("config", "metrics", "curves", "params", "provenance"):
        if not isinstance(record[k], dict):
            raise ResultsError(f"field {k} must be an object, got {type(record[k]).__name__}")


def _clean(obj):
    """JSON-safe copy: numpy / torch scalars to Python numbers, NaN/inf to None, keys to strings."""
    import math

    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def save_run(notebook: str, experiment: str, variant: str, config: dict, metrics: dict, *, profile: str, seed: int,
             curves: dict | None = None, params: dict | None = None, provenance: dict | None = None,
             status: str = "ok", device: str | None = None, root: Path | None = None) -> Path:
    """Write one run record atomically and return its path.

    `config` is the resolved configuration that determines the run id; `provenance` extends what is collected
    automatically (git, versions, device) with e.g. wall_s, peak_mem_mb, tokens_per_s.
    """
    root = Path(root) if root else results_dir()
    notebook = Path(notebook).stem
    config = _clean(config)
    rid = run_id(variant, config, seed)
    record = {
        "schema_version": SCHEMA_VERSION, "run_id": rid, "notebook": notebook, "experiment": str(experiment),
        "variant": str(variant), "profile": profile, "seed": int(seed), "config": config,
        "metrics": _clean(metrics), "curves": _clean(curves or {}), "params": _clean(params or {}),
        "provenance": {**git_state(), "versions": package_versions(), "device": device_name(device),
                       **_clean(provenance or {})},
        "status": status, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    validate(record)
    folder = root / notebook
    path = folder / f"{rid}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if path.exists():
            try:
                old = json.loads(path.read_text())
                if canonical(old.get("config")) != canonical(config):
                    raise ResultsError(f"{path} holds a different config under the same id (hash collision); "
                                       "refusing to overwrite it")
            except json.JSONDecodeError:
                pass  # a corrupt record of the same id: replacing it with a valid one loses nothing
        fd, tmp = tempfile.mkstemp(prefix=f".{rid}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as e:
        raise ResultsError(f"cannot write results under {folder} ({e.strerror or e}). Set LAB_RESULTS to a writable "
                           "folder; existing records were not touched.") from None
    return path


def iter_records(root: Path | None = None):
    """Yield (path, record or None, error or None) for every results/<notebook>/*.json."""
    root = Path(root) if root else results_dir()
    for path in sorted(root.glob("*/*.json")):
        try:
            rec = json.loads(path.read_text())
            validate(rec)
            yield path, rec, None
        except (json.JSONDecodeError, ResultsError, UnicodeDecodeError, OSError) as e:
            yield path, None, f"{type(e).__name__}: {e}"


def load_runs(root: Path | None = None, notebook: str | None = None, flatten: bool = True, report: bool = True):
    """All records as a pandas DataFrame, one row per run.

    With flatten, metrics/params/provenance become columns `metrics.<name>` etc. (curves and config stay nested
    objects in `curves` / `config`). Corrupt or schema-invalid files are reported (warning + `df.attrs['bad']`)
    and skipped, never fatal.
    """
    import pandas as pd

    rows, bad = [], []
    for path, rec, err in iter_records(root):
        if err:
            bad.append({"path": str(path), "error": err})
            continue
        if notebook and rec["notebook"] != notebook:
            continue
        if flatten:
            row = {k: v for k, v in rec.items() if k not in ("metrics", "params", "provenance")}
            for group in ("metrics", "params", "provenance"):
                for k, v in rec[group].items():
                    row[f"{group}.{k}"] = v
            rows.append(row)
        else:
            rows.append(rec)
    if bad and report:
        msg = "; ".join(f"{b['path']} ({b['error'][:120]})" for b in bad)
        warnings.warn(f"load_runs skipped {len(bad)} unreadable record(s): {msg}", stacklevel=2)
        print(f"warning: skipped {len(bad)} unreadable record(s): {msg}", file=sys.stderr)
    df = pd.DataFrame(rows)
    df.attrs["bad"] = bad
    return df


def save_result(run, experiment: str, variant: str, result: dict, config: dict | None = None,
                status: str = "ok") -> Path:
    """save_run for a `profiles.Run` and a result dict {metrics, curves, params, provenance} (e.g. from the training
    core). The run id's config is the notebook's resolved settings (plus `config`, if given) and the profile."""
    cfg = {"profile": run.profile, **(config if config is not None else run.as_dict()["cfg"])}
    return save_run(run.notebook, experiment, variant, cfg, result.get("metrics", {}), profile=run.profile,
                    seed=run.seed, curves=result.get("curves"), params=result.get("params"),
                    provenance=result.get("provenance"), status=status, device=run.device)


def flatten_rows(rows: list[dict], keys: tuple = ("corpus", "split")) -> dict:
    """[{corpus: en, split: test, words: 5}, ...] -> {"en.test.words": 5, ...}: table rows as scalar metrics."""
    return {".".join(str(r[k]) for k in keys) + f".{name}": v for r in rows for name, v in r.items() if name not in keys}
