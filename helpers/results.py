"""The results store: one JSON record per run at results/<notebook-stem>/<run_id>.json.

Record fields (SCHEMA_VERSION 2): schema_version, run_id, config_hash, notebook, experiment, variant, profile, seed,
config (resolved, as run), metrics ({name: scalar}), tables ({name: [row dict, ...]}: what a notebook shows as a
table), curves ({name: {step: value}}), params ({name: count}), provenance (git commit, dirty flag and diff hash,
package versions, device, wall time, peak memory, tokens/s where relevant), status, created.

run_id = <variant slug>-<config_hash>-s<seed>, where config_hash is the sha1 of the canonical JSON of the config
WITHOUT the execution settings (EXECUTION_KEYS: how many workers, progress bars, logging cadence, run names, wandb),
which change how a run is carried out but not its result, and without settings left at None (so adding an option
whose None default means "off" keeps every existing id). Rerunning a config on any machine therefore replaces its
own record; a different config never lands on the same id (a hash collision is detected and refused). Writes are
atomic (temp file in the same folder + os.replace): a crash never leaves a half-written record or destroys the
previous one.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .paths import results_dir
from .provenance import collect

SCHEMA_VERSION = 2
REQUIRED = ("schema_version", "run_id", "notebook", "experiment", "variant", "profile", "seed", "config", "metrics",
            "curves", "params", "provenance", "status")
STATUSES = ("ok", "failed", "partial")
# settings that change how a run is executed, never what it computes: kept in the record, left out of the hash
EXECUTION_KEYS = frozenset({"workers", "progress", "log_every", "run_name", "wandb", "checkpoint_every_s"})


class ResultsError(RuntimeError):
    pass


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def result_config(config):
    """The config without its execution settings and without unset (None) options, at any depth: what determines
    the result. Leaving None out keeps every existing run id valid when a setting is added whose default (None)
    means "off"."""
    if isinstance(config, dict):
        return {k: result_config(v) for k, v in config.items() if k not in EXECUTION_KEYS and v is not None}
    if isinstance(config, (list, tuple)):
        return [result_config(v) for v in config]
    return config


def config_hash(config: dict) -> str:
    return hashlib.sha1(canonical(result_config(_clean(config))).encode()).hexdigest()[:10]


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")
    return s[:80] or "run"


def run_id(variant: str, config: dict, seed: int) -> str:
    return f"{slug(variant)}-{config_hash(config)}-s{seed}"


# ------------------------------------------------------------------------------------------------ write / read
def validate(record: dict) -> None:
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ResultsError(f"record lacks field(s) {missing}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise ResultsError(f"schema_version {record['schema_version']!r}; this code reads {SCHEMA_VERSION} "
                           "(older records: python benchmarks/migrate_records.py)")
    if record["status"] not in STATUSES:
        raise ResultsError(f"status {record['status']!r}; allowed: {STATUSES}")
    for k in ("config", "metrics", "curves", "params", "provenance", "tables"):
        if not isinstance(record.get(k, {}), dict):
            raise ResultsError(f"field {k} must be an object, got {type(record[k]).__name__}")
    for name, rows in record.get("tables", {}).items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ResultsError(f"table {name!r} must be a list of row objects")


def _clean(obj):
    """JSON-safe copy: numpy / torch scalars to Python numbers, NaN/inf to None, keys to strings, tuples to lists."""
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


def build_record(notebook: str, experiment: str, variant: str, config: dict, metrics: dict, *, profile: str,
                 seed: int, curves: dict | None = None, params: dict | None = None, tables: dict | None = None,
                 provenance: dict | None = None, status: str = "ok", device: str | None = None) -> dict:
    """The record as it will be written (JSON-safe, validated), without writing it."""
    config = _clean(config)
    record = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id(variant, config, seed), "config_hash": config_hash(config),
        "notebook": Path(notebook).stem, "experiment": str(experiment), "variant": str(variant), "profile": profile,
        "seed": int(seed), "config": config, "metrics": _clean(metrics), "tables": _clean(tables or {}),
        "curves": _clean(curves or {}), "params": _clean(params or {}),
        "provenance": {**collect(device), **_clean(provenance or {})},
        "status": status, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    validate(record)
    return record


def write_record(record: dict, root: Path | None = None) -> Path:
    """Write a built record atomically to <root>/<notebook>/<run_id>.json; refuses a hash collision."""
    validate(record)
    folder = (Path(root) if root else results_dir()) / record["notebook"]
    path = folder / f"{record['run_id']}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if path.exists():
            try:
                old = json.loads(path.read_text())
                if canonical(result_config(old.get("config"))) != canonical(result_config(record["config"])):
                    raise ResultsError(f"{path} holds a different config under the same id (hash collision); "
                                       "refusing to overwrite it")
            except json.JSONDecodeError:
                pass  # a corrupt record of the same id: replacing it with a valid one loses nothing
        fd, tmp = tempfile.mkstemp(prefix=f".{record['run_id']}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as e:
        raise ResultsError(f"cannot write results under {folder} ({e.strerror or e}). Set LAB_RESULTS to a writable "
                           "folder; existing records were not touched.") from None
    return path


def save_run(notebook: str, experiment: str, variant: str, config: dict, metrics: dict, *, profile: str, seed: int,
             curves: dict | None = None, params: dict | None = None, tables: dict | None = None,
             provenance: dict | None = None, status: str = "ok", device: str | None = None,
             root: Path | None = None) -> Path:
    """Build and write one run record; returns its path.

    `config` is the resolved configuration (its result-determining part gives the run id); `provenance` extends
    what is collected automatically (git, versions, device) with e.g. wall_s, peak_mem_mb, tokens_per_s.
    """
    record = build_record(notebook, experiment, variant, config, metrics, profile=profile, seed=seed, curves=curves,
                          params=params, tables=tables, provenance=provenance, status=status, device=device)
    return write_record(record, root)


def run_config(run, config: dict | None = None) -> dict:
    """The config a `profiles.Run`'s record is keyed by: the profile plus the notebook's resolved settings (or
    `config`, for a section whose result depends on less than all of them)."""
    return {"profile": run.profile, **(config if config is not None else run.as_dict()["cfg"])}


def save_result(run, experiment: str, variant: str, result: dict, config: dict | None = None,
                status: str = "ok") -> dict:
    """Write the record of one section of a `profiles.Run` from a result dict {metrics, tables, curves, params,
    provenance} (e.g. from the training core) and return the record (the same dict a reader gets back)."""
    record = build_record(run.notebook, experiment, variant, run_config(run, config), result.get("metrics", {}),
                          profile=run.profile, seed=run.seed, curves=result.get("curves"),
                          params=result.get("params"), tables=result.get("tables"),
                          provenance=result.get("provenance"), status=status, device=run.device)
    write_record(record)
    run.collect(record)
    return record


def keyed(*records: dict) -> dict:
    """The one shape every notebook section returns: {(variant, seed): record}."""
    return {(r["variant"], r["seed"]): r for r in records}


def recorded(run, variant: str, config: dict | None = None, notebook: str | None = None) -> dict | None:
    """The stored record of (variant, run_config(run, config), run.seed) in `notebook` (default the run's), if it
    exists with status ok; collected into the run's records."""
    rec = find_record(notebook or run.notebook, variant, run_config(run, config), run.seed)
    if rec is not None:
        run.collect(rec)
    return rec


def load_or_run(run, experiment: str, variant: str, compute, config: dict | None = None, force: bool = False) -> dict:
    """A notebook section that writes one record: the stored record of (variant, config, run.seed) when it exists
    with status ok (unless force), else compute() -> a result dict (as save_result takes; "status" optional) is run
    and saved. A rerun of a finished notebook therefore loads instead of recomputing. Returns keyed(record)."""
    rec = None if force else recorded(run, variant, config)
    if rec is not None:
        print(f"{experiment}: recorded as {rec['run_id']} ({rec['created'][:19]}), loaded", flush=True)
        return keyed(rec)
    result = compute()
    return keyed(save_result(run, experiment, variant, result, config=config, status=result.pop("status", "ok")))


def find_record(notebook: str, variant: str, config: dict, seed: int, root: Path | None = None) -> dict | None:
    """The stored record of exactly this (variant, config, seed) if it exists, is readable and has status ok."""
    path = (Path(root) if root else results_dir()) / Path(notebook).stem / f"{run_id(variant, config, seed)}.json"
    try:
        rec = json.loads(path.read_text())
        validate(rec)
    except (OSError, json.JSONDecodeError, ResultsError):
        return None
    same = canonical(result_config(rec["config"])) == canonical(result_config(_clean(config)))
    return rec if same and rec["status"] == "ok" else None


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


def _report_bad(bad: list[dict]) -> None:
    msg = "; ".join(f"{b['path']} ({b['error'][:120]})" for b in bad)
    warnings.warn(f"skipped {len(bad)} unreadable record(s): {msg}", stacklevel=3)
    print(f"warning: skipped {len(bad)} unreadable record(s): {msg}", file=sys.stderr)


def load_records(root: Path | None = None, notebook: str | None = None, report: bool = True) -> list[dict]:
    """Every readable record (optionally of one notebook) as a list of dicts; unreadable files are reported."""
    out, bad = [], []
    for path, rec, err in iter_records(root):
        if err:
            bad.append({"path": str(path), "error": err})
        elif notebook is None or rec["notebook"] == Path(notebook).stem:
            out.append(rec)
    if bad and report:
        _report_bad(bad)
    return out


def load_runs(root: Path | None = None, notebook: str | None = None, flatten: bool = True, report: bool = True):
    """All records as a pandas DataFrame, one row per run.

    With flatten, metrics/params/provenance become columns `metrics.<name>` etc. (tables, curves and config stay
    nested objects). Corrupt or schema-invalid files are reported (warning + `df.attrs['bad']`) and skipped.
    """
    rows, bad = [], []
    for path, rec, err in iter_records(root):
        if err:
            bad.append({"path": str(path), "error": err})
            continue
        if notebook and rec["notebook"] != Path(notebook).stem:
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
        _report_bad(bad)
    df = pd.DataFrame(rows)
    df.attrs["bad"] = bad
    return df
