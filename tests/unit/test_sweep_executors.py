"""Executors: one concurrent.futures-style interface over in-process, a process pool and submitit."""

from __future__ import annotations

import math
import os
from concurrent.futures import Future, wait

import pytest
import torch

from grokscope.errors import ConfigError
from grokscope.sweep.executors import (
    InlineExecutor,
    LocalExecutor,
    SlurmExecutor,
    local_executor,
    make_executor,
)


def test_inline_runs_at_submission_and_keeps_exceptions():
    ex = InlineExecutor()
    f = ex.submit(math.sqrt, 9)
    assert isinstance(f, Future) and f.done() and f.result() == 3
    bad = ex.submit(math.sqrt, -1)
    assert isinstance(bad.exception(), ValueError)
    assert list(ex.map(pow, [2, 3], [3, 2])) == [8, 9]


def test_local_executor_choice():
    assert isinstance(local_executor(1), InlineExecutor)
    assert isinstance(local_executor(4, jobs=1), InlineExecutor)
    with make_executor("local", workers=1) as ex:
        assert isinstance(ex, InlineExecutor)


def test_process_pool_one_torch_thread_per_process():
    with LocalExecutor(2) as ex:
        futures = ex.submit_batch(torch.get_num_threads, [()] * 4)
        pids = ex.submit_batch(os.getpid, [()] * 4)
        wait(futures + pids)
        assert [f.result() for f in futures] == [1, 1, 1, 1]
        assert os.getpid() not in {f.result() for f in pids}
        assert list(ex.map(pow, [2, 3], [3, 2])) == [8, 9]
        assert isinstance(ex.submit(math.sqrt, -1).exception(), ValueError)


def test_submitit_debug_executor(tmp_path):
    ex = SlurmExecutor(tmp_path / "slurm", cluster="debug")
    assert ex.batched
    futures = ex.submit_batch(pow, [(2, 3), (3, 2), (-1, 0.5)])
    wait(futures, timeout=60)
    assert [f.result() for f in futures[:2]] == [8, 9]
    assert futures[2].result() == pytest.approx(complex(0, 1))
    bad = ex.submit(math.sqrt, -1)
    assert isinstance(bad.exception(timeout=60), ValueError)
    assert list(ex.map(pow, [2], [5])) == [32]
    ex.shutdown()


def test_make_executor_errors(tmp_path):
    with pytest.raises(ConfigError, match="^executor: must be one of local, ray, slurm, got 'dask'$"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="^address: only for --executor ray$"):
        make_executor("local", address="auto")
    with pytest.raises(ConfigError, match="^slurm.cluster: must be one of 'slurm', 'local', 'debug'"):
        make_executor("slurm", folder=tmp_path, slurm={"cluster": "aws"})
    with pytest.raises(ConfigError, match="^slurm: bad submitit parameters"):
        make_executor("slurm", folder=tmp_path, slurm={"cluster": "debug", "no_such_param": 1})
