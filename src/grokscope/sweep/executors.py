"""Where sweep jobs run, behind one concurrent.futures-style interface.

Every executor has `submit(fn, *args) -> Future`, `submit_batch(fn, arglists) -> [Future]`,
`map(fn, *iterables)` and `shutdown()`, and returns real `concurrent.futures.Future`s, so callers
can `wait`, `as_completed` or `add_done_callback` the same way whatever the engine:

- `InlineExecutor`: runs each call in this process when it is submitted (one worker).
- `LocalExecutor`: a process pool, one process per core, torch limited to one thread per process.
- `RayExecutor`: tasks on an existing Ray cluster (`ray.init(address=...)`); a task whose worker
  process dies is retried (`max_retries`), so a killed worker does not lose the sweep.
- `SlurmExecutor`: submitit; `submit_batch` submits one SLURM job array. Its `cluster` can also be
  submitit's 'local' (one subprocess per job) or 'debug' (in this process) executor, for tests.

`fn` and its arguments must be picklable by reference (module-level functions), since the
process pool, Ray and SLURM run them in other processes or machines.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from grokscope.errors import ConfigError

EXECUTORS = ("local", "ray", "slurm")


class Executor:
    """Base class: `submit_batch` and `map` on top of `submit`; a context manager."""

    name = "base"
    workers = 1
    batched = False

    def submit(self, fn: Callable, /, *args: Any) -> Future:
        raise NotImplementedError

    def submit_batch(self, fn: Callable, arglists: Iterable[tuple]) -> list[Future]:
        """Submit fn(*args) for every args; engines with job arrays submit them as one."""
        return [self.submit(fn, *args) for args in arglists]

    def map(self, fn: Callable, *iterables: Iterable) -> Iterator:
        """Results of fn over zipped iterables, in order (like Executor.map)."""
        futures = self.submit_batch(fn, list(zip(*iterables)))
        try:
            for f in futures:
                yield f.result()
        finally:
            for f in futures:
                f.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Release the engine; with cancel_futures, drop jobs that have not started."""

    def describe(self) -> str:
        return self.name

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown(wait=exc[0] is None, cancel_futures=exc[0] is not None)


class InlineExecutor(Executor):
    """Runs fn(*args) in this process at submission; the returned future is already done."""

    name = "local (in-process)"

    def submit(self, fn: Callable, /, *args: Any) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args))
        except Exception as e:  # KeyboardInterrupt and SystemExit propagate
            future.set_exception(e)
        return future


def _init_worker() -> None:
    """Process-pool initializer: one torch thread per process (processes are the parallelism)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


class LocalExecutor(Executor):
    """A pool of `workers` processes (default: one per core), started with 'spawn'."""

    def __init__(self, workers: int | None = None):
        import multiprocessing

        self.workers = workers or os.cpu_count() or 1
        self.name = f"local ({self.workers} processes)"
        self._pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_init_worker,
                                         mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable, /, *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def local_executor(workers: int | None = None, jobs: int | None = None) -> Executor:
    """In-process for one worker or one job, else a process pool of min(workers, jobs) processes."""
    n = workers or os.cpu_count() or 1
    if jobs is not None:
        n = min(n, jobs)
    return InlineExecutor() if n <= 1 else LocalExecutor(n)


def _call(fn: Callable, *args: Any) -> Any:
    """Trampoline run by Ray workers: one remote function serves any fn."""
    return fn(*args)


def is_ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def is_submitit_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("submitit") is not None


class RayExecutor(Executor):
    """Tasks on an existing Ray cluster. `address`: 'auto' (the cluster started on this machine
    with `ray start`) or HOST:PORT of its head. Each task takes `num_cpus` CPUs and is retried up
    to `max_retries` times when its worker process or node dies."""

    def __init__(self, address: str = "auto", *, max_retries: int = 3, num_cpus: float = 1):
        if not is_ray_available():
            raise ConfigError("executor: 'ray' needs the ray package: pip install grokscope[ray]")
        kwargs = {}
        if address != "auto":
            host = _probe(address)
            if host in ("127.0.0.1", "localhost"):  # a head started with --node-ip-address=127.0.0.1
                kwargs["_node_ip_address"] = "127.0.0.1"
        import ray

        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            try:
                ray.init(address=address, log_to_driver=False, logging_level="warning", **kwargs)
            except ConnectionError as e:
                raise ConfigError(f"address: no Ray cluster at {address!r} (start one with "
                                  f"`ray start --head`): {' '.join(str(e).split())[:200]}") from None
        self.workers = int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 1e-9)) or 1
        self.name = f"ray ({address}, {self.workers} CPUs)"
        self._remote = ray.remote(num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=False)(_call)

    def submit(self, fn: Callable, /, *args: Any) -> Future:
        return self._remote.remote(fn, *args).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


def _probe(address: str) -> str:
    """Check that HOST:PORT accepts TCP connections (ray.init would retry a dead address for
    minutes); returns HOST."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"address: must be auto or HOST:PORT of a Ray head, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise ConfigError(f"address: no Ray cluster at {address!r} ({e.strerror or e}); start one with "
                          "`ray start --head --port PORT`") from None
    return host


class SlurmExecutor(Executor):
    """SLURM through submitit; `submit_batch` submits one job array.

    `cluster`: 'slurm', or submitit's 'local' / 'debug' executors (for trying a sweep without a
    cluster). `parameters` go to submitit's `update_parameters` (e.g. timeout_min=120,
    slurm_partition='gpu', slurm_array_parallelism=64); each job gets one CPU by default."""

    batched = True  # callers should use submit_batch: one job array instead of many jobs

    def __init__(self, folder: str | Path, *, cluster: str = "slurm", parameters: dict | None = None,
                 workers: int | None = None, poll_seconds: float = 1.0):
        if not is_submitit_available():
            raise ConfigError("executor: 'slurm' needs the submitit package: pip install grokscope[slurm]")
        if cluster not in ("slurm", "local", "debug"):
            raise ConfigError(f"slurm.cluster: must be one of 'slurm', 'local', 'debug', got {cluster!r}")
        import submitit

        self.cluster = cluster
        self.folder = Path(folder)
        try:
            self._ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster=cluster)
        except RuntimeError as e:  # e.g. 'Could not detect "srun", are you indeed on a slurm cluster?'
            raise ConfigError(f"executor: slurm is not usable here ({str(e).splitlines()[0]}); --slurm "
                              "cluster=local runs the jobs through submitit on this machine") from None
        params: dict[str, Any] = {"timeout_min": 24 * 60, "cpus_per_task": 1, "name": "grokscope-sweep"}
        if workers:
            params["slurm_array_parallelism"] = workers
        params.update(parameters or {})
        try:
            self._ex.update_parameters(**params)
        except (ValueError, TypeError, NameError) as e:  # submitit: NameError for unknown parameters
            raise ConfigError(f"slurm: bad submitit parameters {params}: {str(e).splitlines()[0]}") from None
        self.workers = workers or 1
        self.name = f"slurm ({cluster})"
        self.poll_seconds = poll_seconds
        self._pending: list[tuple[Any, Future]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable, /, *args: Any) -> Future:
        return self.submit_batch(fn, [args])[0]

    def submit_batch(self, fn: Callable, arglists: Iterable[tuple]) -> list[Future]:
        arglists = list(arglists)
        if not arglists:
            return []
        with self._ex.batch():
            jobs = [self._ex.submit(fn, *args) for args in arglists]
        futures = [Future() for _ in jobs]
        for f in futures:
            f.set_running_or_notify_cancel()
        with self._lock:
            self._pending += list(zip(jobs, futures))
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll, name="grokscope-submitit", daemon=True)
                self._thread.start()
        return futures

    def _poll(self) -> None:
        """Move finished jobs' results (or exceptions) into their futures."""
        while True:
            with self._lock:
                pending = list(self._pending)
                if self._closed or not pending:
                    self._thread = None
                    return
            for job, future in pending:
                if self.cluster == "debug":  # runs the job here (without DebugJob's pdb on errors)
                    _settle(future, lambda job=job: job.submission().result())
                elif job.done():
                    _settle(future, job.result)
                else:
                    continue
                with self._lock:
                    self._pending.remove((job, future))
            time.sleep(self.poll_seconds if self.cluster != "debug" else 0)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            with self._lock:
                for job, future in self._pending:
                    job.cancel(check=False)
                    future.cancel() or future.set_exception(RuntimeError("cancelled"))
                self._pending = []
        thread = self._thread
        if wait and thread is not None:
            thread.join()
        with self._lock:
            self._closed = True


def _settle(future: Future, get: Callable[[], Any]) -> None:
    try:
        future.set_result(get())
    except Exception as e:
        future.set_exception(e)


def make_executor(kind: str, *, workers: int | None = None, jobs: int | None = None,
                  address: str | None = None, folder: str | Path | None = None,
                  slurm: dict | None = None, max_retries: int = 3) -> Executor:
    """The executor named `kind` ('local', 'ray' or 'slurm'); `jobs` caps the local pool size.

    For 'slurm', `slurm` holds submitit parameters plus an optional 'cluster' key (slurm, local,
    debug) and `folder` is where submitit keeps its job files and logs."""
    if kind == "local":
        if address is not None:
            raise ConfigError("address: only for --executor ray")
        return local_executor(workers, jobs)
    if kind == "ray":
        return RayExecutor(address or "auto", max_retries=max_retries)
    if kind == "slurm":
        if address is not None:
            raise ConfigError("address: only for --executor ray")
        params = dict(slurm or {})
        cluster = params.pop("cluster", "slurm")
        if folder is None:
            raise ConfigError("slurm: a folder for submitit's job files is needed")
        return SlurmExecutor(folder, cluster=cluster, parameters=params, workers=workers)
    raise ConfigError(f"executor: must be one of {', '.join(EXECUTORS)}, got {kind!r}")
