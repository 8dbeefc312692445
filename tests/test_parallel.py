"""map_processes: CPU jobs go to spawned single-threaded workers; jobs on an accelerator stay in this process."""
import os

from helpers.parallel import map_processes


def test_cpu_jobs_run_in_worker_processes_in_job_order():
    out = map_processes(os.getpid, {"a": (), "b": (), "c": ()}, workers=2)
    assert list(out) == ["a", "b", "c"] and os.getpid() not in out.values()


def test_accelerator_jobs_stay_in_this_process():
    out = map_processes(os.getpid, {"a": (), "b": ()}, workers=2, device="cuda")
    assert set(out.values()) == {os.getpid()}
