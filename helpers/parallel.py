"""Training several small models at once on a CPU: one process per core, one torch thread each.

Small models use two single-threaded processes far better than one process with two threads (and two processes
each running two threads on two cores slow each other down badly). Workers are spawned, so `fn` must be importable.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed


def _init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _call(packed):
    fn, key, args = packed
    return key, fn(*args)


def map_processes(fn, jobs: dict, workers: int = 2, progress: str | None = None, device: str = "cpu") -> dict:
    """{key: fn(*args)} for jobs {key: args}; in `workers` spawned processes (1 torch thread each) when workers > 1
    and the jobs run on the CPU, else one after another in this process (an accelerator is not split this way)."""
    from tqdm.auto import tqdm

    if device != "cpu":
        workers = 1
    out = {}
    bar = tqdm(total=len(jobs), desc=progress, unit="run", disable=progress is None)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init,
                                 initargs=(1,)) as pool:
            for fut in as_completed([pool.submit(_call, (fn, k, a)) for k, a in jobs.items()]):
                key, value = fut.result()
                out[key] = value
                bar.update()
    else:
        for k, a in jobs.items():
            out[k] = fn(*a)
            bar.update()
    bar.close()
    return {k: out[k] for k in jobs}
