"""map_processes: every CPU job runs in a fresh single-threaded process; jobs on an accelerator stay in this process;
the workers (and their fork server) end with their parent, however it is killed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.parallel import map_processes


def test_cpu_jobs_run_in_worker_processes_in_job_order():
    out = map_processes(os.getpid, {"a": (), "b": (), "c": ()}, workers=2)
    assert list(out) == ["a", "b", "c"] and os.getpid() not in out.values()


def _job_state():
    import torch

    return os.getpid(), torch.get_num_threads(), os.environ.get("LAB_PARALLEL_PROBE")


def test_every_cpu_job_runs_in_a_fresh_single_threaded_process_even_with_one_worker(monkeypatch):
    """A clean state per job: no two jobs share a process (a reused worker changed a run's floats), across calls too,
    and workers=1 does not run the job here with this process's threads; the asking process's environment goes with
    each job, as it is when the job is asked for."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setenv("LAB_PARALLEL_PROBE", "first")
        two = map_processes(_job_state, {i: () for i in range(4)}, workers=2)
        monkeypatch.setenv("LAB_PARALLEL_PROBE", "second")
        one = map_processes(_job_state, {i: () for i in range(3)}, workers=1)
    finally:
        torch.set_num_threads(threads)
    pids = [v[0] for v in [*two.values(), *one.values()]]
    assert len(set(pids)) == 7 and os.getpid() not in pids
    assert {v[1] for v in [*two.values(), *one.values()]} == {1}
    assert {v[2] for v in two.values()} == {"first"} and {v[2] for v in one.values()} == {"second"}


def test_accelerator_jobs_stay_in_this_process():
    out = map_processes(os.getpid, {"a": (), "b": ()}, workers=2, device="cuda")
    assert set(out.values()) == {os.getpid()}


def _interrupt_own_group(i):
    """A job that receives what Jupyter's stop and a kernel's shutdown send its process group: SIGINT."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    return i


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_worker_leaves_an_interrupt_to_the_process_that_asked():
    """SIGINT reaching a worker (the kernel's process group is signalled) neither ends its job nor prints a
    KeyboardInterrupt traceback; the asking process, which the same signal reaches, stops the sweep (below)."""
    try:
        out = map_processes(_interrupt_own_group, {0: (0,), 1: (1,)}, workers=1)
    except KeyboardInterrupt:               # the worker's, sent back as its job's outcome
        pytest.fail("a worker ended its job on SIGINT (KeyboardInterrupt) instead of leaving it to its parent")
    assert out == {0: 0, 1: 1}


# A parent that runs two workers' jobs, each writing its pid then sleeping a minute, and waits for them.
_PARENT = '''
import os, pathlib, signal, sys, time
sys.path.insert(0, {root!r})
import helpers.parallel as P

def job(i):
    pathlib.Path({pids!r}, str(os.getpid())).write_text(str(i))
    time.sleep(60)
    return i

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    P.PDEATHSIG = {pdeathsig!r}
    P.map_processes(job, {{0: (0,), 1: (1,)}}, workers=2)
'''


def _alive(pid: int, started: float) -> bool:
    """The process `pid` (started at `started`, psutil's create_time) is still there and not a zombie."""
    import psutil

    try:
        p = psutil.Process(pid)
        return p.create_time() == started and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig,pdeathsig", [("SIGKILL", True), ("SIGTERM", False), ("SIGINT", True)],
                         ids=["sigkill", "sigterm-watcher-only", "sigint"])
def test_workers_end_with_a_killed_parent(tmp_path, sig, pdeathsig):
    """A sweep's parent killed (SIGKILL / SIGTERM: no cleanup runs in it; SIGINT: KeyboardInterrupt, as Jupyter's
    stop raises) leaves no worker running its job, and no fork server, within a few seconds; sigterm-watcher-only:
    the workers do not ask for PR_SET_PDEATHSIG, so the watcher thread alone must end them. ~10 s each."""
    import psutil

    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "parent.py"
    script.write_text(_PARENT.format(root=str(Path(__file__).resolve().parents[1]), pids=str(pids),
                                     pdeathsig=pdeathsig))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while len(list(pids.iterdir())) < 2:
            assert parent.poll() is None, parent.stderr.read().decode()
            assert time.time() < deadline, "the workers never started their jobs"
            time.sleep(0.1)
        workers = {int(p.name): psutil.Process(int(p.name)).create_time() for p in pids.iterdir()}
        servers = {psutil.Process(pid).ppid() for pid in workers}       # forked by the fork server, the parent's child
        assert len(servers) == 1 and all(psutil.Process(s).ppid() == parent.pid for s in servers)
        workers.update({s: psutil.Process(s).create_time() for s in servers})
        os.kill(parent.pid, getattr(signal, sig))
        try:
            parent.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the parent still runs 20 s after its {sig} (waiting for its workers' jobs to finish?)")
        t0 = time.time()
        while any(_alive(pid, t) for pid, t in workers.items()) and time.time() - t0 < 10:
            time.sleep(0.1)
        left = [pid for pid, t in workers.items() if _alive(pid, t)]
        print(f"{sig}{'' if pdeathsig else ' (watcher only)'}: workers gone {time.time() - t0:.2f} s after the parent")
        assert not left, f"workers {left} still running 10 s after the parent's {sig}"
    finally:
        for pid in workers if "workers" in locals() else ():
            if _alive(pid, workers[pid]):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
