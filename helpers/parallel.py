"""Training several models at once: on a CPU one process per core, one torch thread each; on CUDA one process per
visible GPU, or several per GPU for models too small to keep one busy.

Small models use two single-threaded processes far better than one process with two threads (and two processes
each running two threads on two cores slow each other down badly). Workers are spawned, so `fn` must be importable.
The pool lives as long as the notebook's kernel: a second sweep reuses the same workers and whatever they cached
(tokenized data, references), instead of paying the spawn and the data preparation again.

On CUDA each worker is pinned to one device when it starts (torch.cuda.set_device: a job's "cuda" is that device),
round-robin, `per_device` workers per device; a single worker stays in this process. A small model's step is bound
by kernel-launch latency, not by the GPU's arithmetic (notebook 05's looped model: ~1% MFU on an H100), so several
such runs side by side on one GPU fill the gaps between each other's kernels.

Workers end with their parent. A parent killed outright (SIGKILL, SIGTERM, a scheduler's kill, a kernel restart)
takes its workers with it within a second: on Linux the kernel sends each worker SIGKILL when the parent goes
(prctl PR_SET_PDEATHSIG), and everywhere a watcher thread in each worker exits it once its parent is gone (the
parent's sentinel closes, or os.getppid() changes). A sweep interrupted in this process (Jupyter's stop, Ctrl-C:
KeyboardInterrupt) kills its pool's workers, running jobs included, and the next sweep starts a fresh pool.
PR_SET_PDEATHSIG fires when the *thread* that spawned a worker ends, and a pool spawns its workers lazily, from the
thread that submits; so only pools used from the main thread (a notebook's cells, a script) ask for it: any other
thread gets a pool of its own, whose workers rely on the watcher alone.
"""
from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

import torch
from tqdm.auto import tqdm

DEVICE_INDEX: int | None = None      # in a worker pinned to a GPU: its device (helpers.parallel.gpu_slots)
PDEATHSIG = sys.platform.startswith("linux")    # workers of main-thread pools ask the kernel for SIGKILL at our end
WATCH_S = 0.5                        # a worker's watcher checks its parent at least this often (seconds)


def _init(parent_pid: int, pdeathsig: bool, threads: int, slots=None) -> None:
    global DEVICE_INDEX
    _end_with_parent(parent_pid, pdeathsig)
    torch.set_num_threads(threads)
    if slots is not None:
        DEVICE_INDEX = slots.get()
        if torch.cuda.is_available():
            torch.cuda.set_device(DEVICE_INDEX)


def _end_with_parent(parent_pid: int, pdeathsig: bool) -> None:
    """In a worker: be killed when the parent process `parent_pid` goes, however it goes."""
    if pdeathsig:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)          # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):                         # no prctl here: the watcher alone
            pass
    if os.getppid() != parent_pid:                                # the parent went before prctl took hold
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="watch-parent", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    """Exit this worker (no cleanup: its job is work nobody will read) once its parent is gone: the parent's sentinel
    (multiprocessing's pipe, closed by the parent's death; at once, on every platform) or, should a process forked
    from the parent hold that pipe open, os.getppid() no longer the parent (every WATCH_S seconds)."""
    parent = mp.parent_process()
    while True:
        if parent is not None:
            parent.join(WATCH_S)
        else:
            time.sleep(WATCH_S)
        if os.getppid() != parent_pid or (parent is not None and not parent.is_alive()):
            os._exit(1)


def worker_device(hold_s: float = 0.0) -> tuple[int, int | None]:
    """(this process's id, the GPU it is pinned to or None): where a job ran (after hold_s seconds, a stand-in for
    a job's work)."""
    time.sleep(hold_s)
    return os.getpid(), DEVICE_INDEX


def gpu_slots(n_devices: int, per_device: int) -> list[int]:
    """The device of each worker: [0, 1, ..., n-1, 0, 1, ...], per_device times round."""
    return [i % n_devices for i in range(n_devices * per_device)]


def _call(packed):
    fn, key, args = packed
    return key, fn(*args)


_POOLS: dict = {}


def _key(workers: int, slots: tuple | None) -> tuple:
    """A pool's key: its shape, and whether it is used from the main thread (PR_SET_PDEATHSIG is tied to the thread
    that spawns a worker, so a pool whose workers ask for it must never be grown from another thread)."""
    return workers, slots, threading.current_thread() is threading.main_thread()


def pool(workers: int, slots: tuple | None = None) -> ProcessPoolExecutor:
    """The process pool of this many workers, started once and reused: single-threaded CPU workers, or workers
    pinned to the GPUs `slots` names (one entry per worker), each with its share of the CPU threads. Its workers
    end with this process (module docstring)."""
    key = _key(workers, slots)
    ex = _POOLS.get(key)
    if ex is None or getattr(ex, "_broken", False) or getattr(ex, "_shutdown_thread", False):
        ctx = mp.get_context("spawn")
        end = (os.getpid(), PDEATHSIG and key[2])
        if slots is None:
            initargs = end + (1,)
        else:
            queue = ctx.Queue()
            for i in slots:
                queue.put(i)
            initargs = end + (max(1, (os.cpu_count() or 1) // workers), queue)
        ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=initargs)
        _POOLS[key] = ex
    return ex


def _kill(key: tuple) -> None:
    """Kill the pool `key`'s workers, their running jobs with them, and forget the pool (the next sweep starts a
    fresh one): what an interrupted sweep does, so that no job nobody will read keeps running."""
    ex = _POOLS.pop(key, None)
    if ex is None:
        return
    if hasattr(ex, "kill_workers"):                               # Python 3.14
        ex.kill_workers()
        return
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.kill()
        except (ProcessLookupError, ValueError):                  # already gone, or closed
            pass
    for p in procs:
        try:
            p.join(5)
        except (AssertionError, ValueError):
            pass


def shutdown() -> None:
    for ex in _POOLS.values():
        ex.shutdown(cancel_futures=True)
    _POOLS.clear()


atexit.register(shutdown)


def map_processes(fn, jobs: dict, workers: int = 2, progress: str | None = None, device: str = "cpu",
                  on_done=None, per_device: int = 1, n_devices: int | None = None) -> dict:
    """{key: fn(*args)} for jobs {key: args}; in `workers` spawned processes (1 torch thread each) when workers > 1
    and the jobs run on the CPU (a single job too, so that it runs single-threaded like the others: a CPU-time budget
    counts every thread), else one after another in this process. On CUDA: per_device workers on each of n_devices
    GPUs (default: every visible one; `workers` is not read), in this process when that makes one worker; any other
    accelerator runs one job at a time here.
    on_done(key, value), if given, is called in this process as soon as each job finishes (e.g. to write its record,
    so that a later failure loses nothing already finished); its return value replaces the job's in the result."""
    slots = None
    if device == "cuda":
        n = torch.cuda.device_count() if n_devices is None else n_devices
        slots = tuple(gpu_slots(max(1, n), max(1, per_device)))
        workers = len(slots)
    elif device != "cpu":
        workers = 1
    out = {}
    bar = tqdm(total=len(jobs), desc=progress, unit="run", disable=progress is None)
    if workers > 1 and jobs:       # even one job: in a worker it gets the workers' one thread, as its neighbours did
        ex = pool(workers, slots)
        futures = [ex.submit(_call, (fn, k, a)) for k, a in jobs.items()]
        try:
            for fut in as_completed(futures):
                key, value = fut.result()
                out[key] = on_done(key, value) if on_done else value
                bar.update()
        except BaseException as e:
            for f in futures:
                f.cancel()
            if isinstance(e, BrokenProcessPool):
                _POOLS.pop(_key(workers, slots), None)
            elif not isinstance(e, Exception):    # KeyboardInterrupt (Jupyter's stop, Ctrl-C), SystemExit: the
                _kill(_key(workers, slots))      # running jobs are stopped too, not left to finish unread
            raise
    else:
        for k, a in jobs.items():
            value = fn(*a)
            out[k] = on_done(k, value) if on_done else value
            bar.update()
    bar.close()
    return {k: out[k] for k in jobs}
