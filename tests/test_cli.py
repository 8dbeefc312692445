"""The command line and the multi-process entry point."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assets
from helpers.paths import REPO_ROOT

BIN = Path(sys.executable).parent


def _run(args, **env):
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_unknown_profile_and_notebook_exit_with_clear_message():
    r = _run([sys.executable, "-m", "helpers", "notebooks", "--profile", "huge"])
    assert r.returncode == 2 and "unknown profile 'huge'; allowed: tiny, local, gpu-small, full, auto" in r.stderr
    r = _run([sys.executable, "-m", "helpers", "notebooks", "--profile", "tiny", "--nb", "99"])
    assert r.returncode == 2 and "no notebook matches '99'" in r.stderr


def test_unknown_asset_step():
    r = _run([sys.executable, "-m", "helpers", "assets", "--steps", "debs,weights"])
    assert r.returncode == 2 and "unknown asset step(s) ['weights']" in r.stderr


@pytest.mark.skipif(not (assets.tokenizer_dir("en") / ".done").exists(), reason="assets not prepared")
def test_pretrain_under_accelerate_launch_with_two_processes(tmp_path):
    """Two CPU processes (gloo DDP): each trains on its shard, rank 0 alone writes the record."""
    r = _run([str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "helpers", "pretrain", "--profile", "tiny",
              "--max-steps", "4"], LAB_RESULTS=str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    files = list(tmp_path.glob("00_data_and_baselines/*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    assert rec["provenance"]["world_size"] == 2
    assert rec["metrics"]["steps"] == 4
    assert rec["metrics"]["tokens"] == 4 * 8 * 2 * 32  # steps x per-device batch x processes x block
