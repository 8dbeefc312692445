"""Executing notebooks with papermill: `make run` / `python -m helpers notebooks`.

Executed copies go to the git-ignored runs/<profile>/; Analysis.ipynb is executed in place (on the repository's own
results/; with LAB_RESULTS elsewhere, a copy in runs/<profile>/) so that its outputs
(tables, plots) are what a reader sees on the web, and without what changes on every execution (papermill's and the
kernel's timestamps and durations, the paths and versions of the machine that ran it): re-executed on the same
records it is byte for byte the committed file, so `make run` leaves `git status` clean. (Its outputs are
deterministic: the same records give the same tables and the same matplotlib PNGs, tests/test_clean_tree.py.)
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import nbformat
import papermill as pm
from nbclient.exceptions import DeadKernelError

from .families import NOTEBOOKS, cell_timeout, check_all, profile_for
from .paths import REPO_ROOT, results_dir
from .profiles import CHOICES, GPU_PROFILES
from .provenance import git_state

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
ANALYSIS = REPO_ROOT / "Analysis.ipynb"


class NotebookError(RuntimeError):
    pass


def list_notebooks(select: str = "") -> list[Path]:
    """notebooks/NN_*.ipynb in order; `select` keeps those whose number or name starts with it ("01", "01_att")."""
    nbs = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if select:
        chosen = [p for p in nbs if p.stem.startswith(select) or p.stem.split("_", 1)[0] == select.zfill(2)]
        if not chosen:
            raise NotebookError(f"no notebook matches '{select}'; available: {', '.join(p.stem for p in nbs)}")
        return chosen
    return nbs


def execute(nb: Path, out: Path, profile: str | None = None, env: dict | None = None, timeout: int = 3600,
            verbose: bool = False) -> float:
    """Run one notebook with papermill (parameters cell gets PROFILE); returns the wall time in seconds.

    verbose: a cell progress bar, and every cell's output (the notebook's own progress bars and log lines) streamed
    to this terminal as it is produced, so a slow run can be told from a hung one."""

    if verbose:
        logging.basicConfig(format="%(message)s")
        logging.getLogger("papermill").setLevel(logging.INFO)

    out.parent.mkdir(parents=True, exist_ok=True)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    t0 = time.time()
    try:
        pm.execute_notebook(str(nb), str(out), parameters={"PROFILE": profile} if profile else {},
                            cwd=str(REPO_ROOT), kernel_name="python3", progress_bar=verbose,
                            execution_timeout=timeout, log_output=verbose)
    except pm.PapermillExecutionError as e:
        raise NotebookError(f"{nb.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
                            f"(executed copy with the traceback: {out})") from None
    except DeadKernelError:
        raise NotebookError(f"{nb.name}: the kernel died (out of memory, or killed); executed copy so far: {out}") \
            from None
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return time.time() - t0


# What an execution writes that differs from one execution to the next: per cell, papermill's start/end time,
# duration, status and exception and the kernel's message timestamps (metadata.execution); per notebook, papermill's
# times, duration, input/output paths and version, and the kernel's Python version.
VOLATILE_CELL_METADATA = ("papermill", "execution")
VOLATILE_NOTEBOOK_METADATA = {"papermill": ("start_time", "end_time", "duration", "input_path", "output_path",
                                            "version"),
                              "language_info": ("version",)}


def strip_volatile(path: Path) -> bool:
    """Remove the volatile metadata (VOLATILE_*) from the notebook at `path`, rewriting it in papermill's own layout
    only if that changes it; True if it did."""
    text = Path(path).read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        for k in VOLATILE_CELL_METADATA:
            cell.metadata.pop(k, None)
        # how a cell's printed text is cut into stream outputs depends on when the kernel flushed (load): merge
        # adjacent chunks of one stream, so the same text is the same file
        merged = []
        for out in cell.get("outputs", []):
            if (merged and out.get("output_type") == "stream" and merged[-1].get("output_type") == "stream"
                    and merged[-1].get("name") == out.get("name")):
                merged[-1]["text"] = "".join(merged[-1]["text"]) + "".join(out["text"])
            else:
                merged.append(out)
        if "outputs" in cell:
            cell["outputs"] = merged
    for section, keys in VOLATILE_NOTEBOOK_METADATA.items():
        for k in keys:
            nb.metadata.get(section, {}).pop(k, None)
    new = nbformat.writes(nb)
    if new == text:
        return False
    Path(path).write_text(new, encoding="utf-8")
    return True


def execute_analysis(path: Path = ANALYSIS, env: dict | None = None, verbose: bool = False) -> float:
    """Execute Analysis.ipynb (or the copy at `path`) in place and strip its volatile metadata; the wall time."""
    wall = execute(path, path, env=env, verbose=verbose)
    strip_volatile(path)
    return wall


def run_all(profile: str = "local", select: str = "", analysis: bool = True, quiet: bool = False) -> dict:
    if profile not in CHOICES:
        raise ValueError(f"unknown profile '{profile}'; allowed: {', '.join(CHOICES)}")

    state = git_state()
    if state.get("dirty"):
        print(f"warning: the working tree has uncommitted changes (diff {state.get('diff_sha1')}); the records "
              "written now say provenance.dirty = true. Commit first for records that point at their code.",
              flush=True)
    chosen = list_notebooks(select)
    if profile in GPU_PROFILES:     # every notebook's plan against this machine, before the first one starts
        problems = check_all(profile, [nb.stem for nb in chosen if nb.stem in NOTEBOOKS])
        if problems:
            raise NotebookError(f"the {profile} profile does not fit this machine:\n  " + "\n  ".join(problems))
    times = {}
    for nb in chosen:
        print(f"== {nb.name} [{profile}]", flush=True)
        times[nb.stem] = execute(nb, REPO_ROOT / "runs" / profile / nb.name, profile, verbose=not quiet,
                                 timeout=cell_timeout(nb.stem, profile_for(nb.stem, profile)[0]))
        print(f"   done in {times[nb.stem]:.0f} s -> runs/{profile}/{nb.name}", flush=True)
    if analysis:
        # in place only on the repository's own records: with LAB_RESULTS pointing elsewhere (tests, a scratch run)
        # the committed Analysis.ipynb would be rewritten with records that are not committed; a copy instead
        results = results_dir().resolve()
        target = ANALYSIS
        if results != (REPO_ROOT / "results").resolve():
            target = REPO_ROOT / "runs" / profile / ANALYSIS.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(ANALYSIS.read_bytes())
        print(f"== Analysis.ipynb ({'in place' if target == ANALYSIS else f'on {results}, a copy: {target}'})",
              flush=True)
        times["Analysis"] = execute_analysis(target, verbose=not quiet)
        print(f"   done in {times['Analysis']:.0f} s", flush=True)
    return times
