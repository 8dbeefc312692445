"""Training several small models at once on a CPU: one process per core, one torch thread each.

Small models use two single-threaded processes far better than one process with two threads (and two processes
each running two threads on two cores slow each other down badly). Workers are spawned, so `fn` must be importable.
The pool lives as long as the notebook's kernel: a second sweep reuses the same workers and whatever they cached
(tokenized data, references), instead of paying the spawn and the data preparation again.
"""
from __future__ import annotations

import atexit
import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

import torch
from tqdm.auto import tqdm


def _init(threads: int) -> None:
    torch.set_num_threads(threads)


def _call(packed):
    fn, key, args = packed
    return key, fn(*args)


_POOLS: dict = {}


def pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of this many single-threaded workers, started once and reused."""
    ex = _POOLS.get(workers)
    if ex is None or getattr(ex, "_broken", False) or getattr(ex, "_shutdown_thread", False):
        ex = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init, initargs=(1,))
        _POOLS[workers] = ex
    return ex


def shutdown() -> None:
    for ex in _POOLS.values():
        ex.shutdown(cancel_futures=True)
    _POOLS.clear()


atexit.register(shutdown)


def map_processes(fn, jobs: dict, workers: int = 2, progress: str | None = None, device: str = "cpu",
                  on_done=None) -> dict:
    """{key: fn(*args)} for jobs {key: args}; in `workers` spawned processes (1 torch thread each) when workers > 1
    and the jobs run on the CPU (a single job too, so that it runs single-threaded like the others: a CPU-time budget
    counts every thread), else one after another in this process (an accelerator is not split this way).
    on_done(key, value), if given, is called in this process as soon as each job finishes (e.g. to write its record,
    so that a later failure loses nothing already finished); its return value replaces the job's in the result."""
    if device != "cpu":
        workers = 1
    out = {}
    bar = tqdm(total=len(jobs), desc=progress, unit="run", disable=progress is None)
    if workers > 1 and jobs:       # even one job: in a worker it gets the workers' one thread, as its neighbours did
        ex = pool(workers)
        futures = [ex.submit(_call, (fn, k, a)) for k, a in jobs.items()]
        try:
            for fut in as_completed(futures):
                key, value = fut.result()
                out[key] = on_done(key, value) if on_done else value
                bar.update()
        except BaseException:
            for f in futures:
                f.cancel()
            if isinstance(sys.exc_info()[1], BrokenProcessPool):
                _POOLS.pop(workers, None)
            raise
    else:
        for k, a in jobs.items():
            value = fn(*a)
            out[k] = on_done(k, value) if on_done else value
            bar.update()
    bar.close()
    return {k: out[k] for k in jobs}
