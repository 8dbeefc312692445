"""Training several models at once: on a CPU one process per core, one torch thread each; on CUDA one process per
visible GPU, or several per GPU for models too small to keep one busy.

Small models use two single-threaded processes far better than one process with two threads (and two processes
each running two threads on two cores slow each other down badly).

One run id, one result: every job starts from the same clean state, a fresh process of its own, forked from a
server process that has imported torch and the helpers this process has loaded, and has run nothing
(multiprocessing's forkserver: ~0.05 s a job instead of the ~7 s a spawned process spends importing), so a run's
numbers cannot depend on which worker ran it or what that worker ran before. (Measured on this repository's CPU
machine, an AMD EPYC with AVX2: running other jobs first in the same process did not change a run's floats; the
committed records that did not reproduce here were most likely made on another CPU, see docs/reproducibility.md.)
A CPU job always runs so, a single one and workers=1 included, with CPU_THREADS torch threads fixed here (the
thread count changes the floats: 05's looped seed 1 gives 0.141 with one thread and 0.150 with two), never the
notebook kernel's. The environment of the asking process goes with each job (the offline switches, LAB_RESULTS,
...); the server is restarted when a variable its preloaded libraries read at import (HF_*) has changed since it
started. What a job caches in memory (tokenized data: helpers.data.prepared) is prepared again in each job.
IN_PROCESS runs the jobs in the asking process instead, still with CPU_THREADS threads: the point command sets it
(a process of its own that runs one job and exits is already the fresh process the rule asks for; a fork server
would import everything a second time), and so do tests' dry runs, whose stand-ins live in the test's process.

On CUDA each worker is pinned to one device when it starts (torch.cuda.set_device: a job's "cuda" is that device),
round-robin, `per_device` workers per device, each with its share of the CPU threads; a worker hands its device back
when its job ends, to the fresh worker that replaces it. A single GPU worker stays in this process. A small model's
step is bound by kernel-launch latency, not by the GPU's arithmetic (notebook 05's looped model: ~1% MFU on an
H100), so several such runs side by side on one GPU fill the gaps between each other's kernels.

Workers end with their parent. A parent killed outright (SIGKILL, SIGTERM, a scheduler's kill, a kernel restart)
takes its workers with it within a second: a watcher thread in each worker exits it once the process that asked
for it is gone (multiprocessing's parent sentinel, a pipe that process holds, closes at its death on every
platform; or the worker's own parent, the fork server, is gone). On Linux each worker also asks the kernel for
SIGKILL when the fork server goes (prctl PR_SET_PDEATHSIG); the server ends by itself once the asking process and
its workers are gone. A sweep interrupted in this process (Jupyter's stop, Ctrl-C: KeyboardInterrupt) kills its
pool's workers, running jobs included, and the next sweep starts a fresh pool.
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
from multiprocessing import forkserver

import torch
from tqdm.auto import tqdm

DEVICE_INDEX: int | None = None      # in a worker pinned to a GPU: its device (helpers.parallel.gpu_slots)
CPU_THREADS = 1                      # torch threads of a CPU job, wherever it runs (module docstring)
PDEATHSIG = sys.platform.startswith("linux")    # workers ask the kernel for SIGKILL when the fork server goes
WATCH_S = 0.5                        # a worker's watcher checks its parents at least this often (seconds)
IN_PROCESS = False                   # jobs run here: the point command, tests' dry runs (module docstring)
_SERVER_ENV: dict | None = None      # the HF_* variables the running fork server started with
_SLOTS = None                        # in a GPU worker: the queue it hands its device back to when its job ends


def _init(pdeathsig: bool, threads: int, slots=None) -> None:
    global DEVICE_INDEX, _SLOTS
    # an interrupt is the asking process's to handle (it kills its pool's workers, map_processes). Jupyter's stop and
    # a kernel's shutdown signal the kernel's whole process group, the workers in it: without this, each idle worker
    # printed a KeyboardInterrupt traceback at the end of every notebook that ran a sweep
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent(pdeathsig)
    torch.set_num_threads(threads)
    if slots is not None:
        _SLOTS = slots
        DEVICE_INDEX = slots.get()
        if torch.cuda.is_available():
            torch.cuda.set_device(DEVICE_INDEX)


def _end_with_parent(pdeathsig: bool) -> None:
    """In a worker: be killed when the process that asked for it goes, however it goes (module docstring)."""
    server = os.getppid()
    if pdeathsig:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)          # 1 = PR_SET_PDEATHSIG (when the server goes)
        except (OSError, AttributeError):                         # no prctl here: the watcher alone
            pass
    parent = mp.parent_process()
    if parent is not None and not parent.is_alive():              # the asking process went before we started
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(server,), name="watch-parent", daemon=True).start()


def _watch_parent(server: int) -> None:
    """Exit this worker (no cleanup: its job is work nobody will read) once the asking process is gone (its
    sentinel, a pipe closed by its death: at once, on every platform) or this worker's own parent, the fork server,
    is (os.getppid() changes; every WATCH_S seconds)."""
    parent = mp.parent_process()
    while True:
        if parent is not None:
            parent.join(WATCH_S)
        else:
            time.sleep(WATCH_S)
        if os.getppid() != server or (parent is not None and not parent.is_alive()):
            os._exit(1)


def worker_device(hold_s: float = 0.0) -> tuple[int, int | None, float, float]:
    """(this process's id, the GPU it is pinned to or None, start, end): where and when a job ran (holding hold_s
    seconds, a stand-in for a job's work)."""
    start = time.time()
    time.sleep(hold_s)
    return os.getpid(), DEVICE_INDEX, start, time.time()


def gpu_slots(n_devices: int, per_device: int) -> list[int]:
    """The device of each worker: [0, 1, ..., n-1, 0, 1, ...], per_device times round."""
    return [i % n_devices for i in range(n_devices * per_device)]


def _call(packed):
    """One job in its fresh worker, under the asking process's environment; a GPU worker's device goes back to the
    pool when the job ends (the worker ends with it)."""
    fn, key, args, env = packed
    os.environ.clear()
    os.environ.update(env)
    try:
        return key, fn(*args)
    finally:
        if _SLOTS is not None:
            _SLOTS.put(DEVICE_INDEX)


_POOLS: dict = {}


def _key(workers: int, slots: tuple | None) -> tuple:
    """A pool's key: its shape."""
    return workers, slots


def _hf_env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_"))}


def _context():
    """The forkserver context, its server (re)started with this process's HF_* environment: the libraries it
    preloads read those variables once, at import."""
    global _SERVER_ENV
    ctx = mp.get_context("forkserver")
    server = forkserver._forkserver                  # the module's one server (private: no public stop or pid)
    if _SERVER_ENV is not None and _SERVER_ENV != _hf_env() and server._forkserver_pid is not None:
        shutdown()
        server._stop()
    if server._forkserver_pid is None:
        # the server imports what this process has of torch and the helpers (a notebook's kernel: its family), so
        # that a job's process starts with them loaded; a job imports anything else itself
        ctx.set_forkserver_preload(["torch", *sorted(m for m in sys.modules if m.startswith("helpers."))])
        _SERVER_ENV = _hf_env()
    return ctx


def pool(workers: int, slots: tuple | None = None) -> ProcessPoolExecutor:
    """The process pool of this many workers: single-threaded CPU workers, or workers pinned to the GPUs `slots`
    names (one entry per worker), each with its share of the CPU threads. Each worker runs one job and exits,
    replaced by a fresh one (max_tasks_per_child=1: every job starts from the same clean state). The executor is
    reused by the next sweep; its workers end with this process (module docstring)."""
    key = _key(workers, slots)
    ctx = _context()
    ex = _POOLS.get(key)
    if ex is None or getattr(ex, "_broken", False) or getattr(ex, "_shutdown_thread", False):
        # PR_SET_PDEATHSIG fires when the thread that forked a worker ends: in the fork server that is its only one
        end = (PDEATHSIG,)
        if slots is None:
            initargs = end + (CPU_THREADS,)
        else:
            queue = ctx.Queue()
            for i in slots:
                queue.put(i)
            initargs = end + (max(1, (os.cpu_count() or 1) // workers), queue)
        ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=initargs, max_tasks_per_child=1)
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
    """{key: fn(*args)} for jobs {key: args}; on the CPU each job in a fresh process of its own with CPU_THREADS (1)
    torch threads, `workers` of them at a time (workers=1 too: a job's numbers must not depend on the process that
    asked for it, nor on its thread count; a CPU-time budget counts every thread). On CUDA: per_device workers on each
    of n_devices GPUs (default: every visible one; `workers` is not read), each job in a fresh process, in this
    process when that makes one worker; any other accelerator runs one job at a time here.
    on_done(key, value), if given, is called in this process as soon as each job finishes (e.g. to write its record,
    so that a later failure loses nothing already finished); its return value replaces the job's in the result."""
    slots = None
    if device == "cuda":
        n = torch.cuda.device_count() if n_devices is None else n_devices
        slots = tuple(gpu_slots(max(1, n), max(1, per_device)))
        workers = len(slots)
        pooled = workers > 1
    else:
        workers = max(1, workers)
        pooled = device == "cpu" and not IN_PROCESS     # any other accelerator: one job at a time, here
    out = {}
    bar = tqdm(total=len(jobs), desc=progress, unit="run", disable=progress is None)
    if pooled and jobs:
        ex = pool(workers, slots)
        env = dict(os.environ)
        futures = [ex.submit(_call, (fn, k, a, env)) for k, a in jobs.items()]
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
        threads = torch.get_num_threads()
        for k, a in jobs.items():
            if device == "cpu":
                torch.set_num_threads(CPU_THREADS)
            try:
                value = fn(*a)
            finally:
                torch.set_num_threads(threads)
            out[k] = on_done(k, value) if on_done else value
            bar.update()
    bar.close()
    return {k: out[k] for k in jobs}
