"""The same sweep gives the same results.csv (timing and path columns aside) whatever the executor:
in-process, a process pool, submitit (a job array on its local executor), and a Ray cluster
started on loopback for this module; killing a Ray worker mid-sweep still completes the sweep."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from grokscope.cli import main
from grokscope.sweep.runner import VOLATILE_COLUMNS, read_results

TINY = ["--task.p", "23", "--task.train_fraction", "0.6", "--train.steps", "150", "--train.eval_every", "10",
        "--model.d_model", "32", "--model.d_mlp", "64", "--optim.lr", "1e-2", "--log.no-figure",
        "--log.no-report"]
SWEEP = [*TINY, "--axis", "optim.weight_decay=0,2", "--seeds", "2"]


def _results(out) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE_COLUMNS} for r in read_results(out)]


def _sweep(capsys, out, *extra) -> list[dict]:
    code = main(["sweep", *SWEEP, "--out", str(out), *extra])
    _, err = capsys.readouterr()
    assert code == 0, err
    return _results(out)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    """The sweep trained in this process, one run after the other."""
    out = tmp_path_factory.mktemp("inline") / "sw"
    assert main(["sweep", *SWEEP, "--out", str(out), "--workers", "1", "--quiet"]) == 0
    rows = _results(out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert len({r["final_test_loss"] for r in rows}) == 4  # four different runs
    return rows


def test_process_pool_matches(tmp_path, capsys, reference):
    assert _sweep(capsys, tmp_path / "sw", "--workers", "2") == reference


def test_submitit_job_array_matches(tmp_path, capsys, reference):
    """SLURM's code path (one job array, pickled jobs) through submitit's local executor; its debug
    executor is covered in tests/unit/test_sweep_executors.py."""
    out = tmp_path / "local"
    rows = _sweep(capsys, out, "--executor", "slurm", "--slurm", "cluster=local", "--slurm", "timeout_min=10",
                  "--pack", "2")
    assert rows == reference
    assert len(list((out / "slurm").rglob("*_submitted.pkl"))) == 2  # two jobs of two runs, one array


def test_vectorized_jobs_train_ensembles(tmp_path, capsys, reference):
    out = tmp_path / "sw"
    rows = _sweep(capsys, out, "--pack", "4", "--vectorize", "--workers", "1")
    summaries = [json.loads((out / "runs" / r["run"] / "summary.json").read_text()) for r in rows]
    assert [s["ensemble"] for s in summaries] == [{"members": 4, "index": i} for i in range(4)]
    for got, want in zip(rows, reference):  # ensemble members match single runs (issue: AdamW <= 1e-3)
        assert {k: got[k] for k in ("run", "status", "outcome", "memorized_step", "generalized_step")} == {
            k: want[k] for k in ("run", "status", "outcome", "memorized_step", "generalized_step")}
        for k in ("final_train_acc", "final_test_acc"):
            assert float(got[k]) == pytest.approx(float(want[k]), abs=0.02)


# ------------------------------------------------------------------------------------------ Ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ray replaces a node IP of 127.0.0.1 by the machine's routable address (services.
# resolve_ip_for_localhost), and its gRPC servers (GCS, raylet, workers) listen on every interface
# unless the node IP really is 127.0.0.1. Ray's single-machine mode, which it uses on macOS and
# Windows, keeps the loopback address: with it the whole cluster and its drivers listen on
# 127.0.0.1 only. The sweep's driver needs the same environment to find the loopback node.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _procs() -> dict[int, tuple[str, int, int, int]]:
    """pid -> (state, ppid, session, start time) of every process, from /proc/PID/stat."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(d)] = (f[0], int(f[1]), int(f[3]), int(f[19]))
    return out


def _tree(root: int) -> dict[int, int]:
    """pid -> start time of `root`, its descendants and the processes of its session (a worker
    whose parent died is no descendant any more). The start time tells a reused pid apart."""
    procs = _procs()
    found = {p for p, (_, _, sid, _) in procs.items() if sid == root} | ({root} & procs.keys())
    todo = list(found)
    while todo:
        parent = todo.pop()
        kids = {p for p, (_, ppid, _, _) in procs.items() if ppid == parent} - found
        found |= kids
        todo += kids
    return {p: procs[p][3] for p in found}


def _ip(hexaddr: str) -> str:
    """An address of /proc/net/tcp*, written as `ss` does (::ffff:127.0.0.1 for IPv4 on IPv6)."""
    raw = bytes.fromhex(hexaddr)  # 32-bit words in host (little-endian) order
    ip = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
    mapped = getattr(ip, "ipv4_mapped", None)
    return f"::ffff:{mapped}" if mapped else str(ip)


def _listening(pids) -> set[tuple[int, str, str, int]]:
    """(pid, process name, address, port) of every TCP socket in LISTEN state that the processes
    `pids` hold: their socket fds matched against /proc/PID/net/tcp and tcp6 (what `ss -ltnp` shows)."""
    found = set()
    for pid in pids:
        try:
            inodes = set()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            rows = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
            if Path(f"/proc/{pid}/net/tcp6").exists():  # absent where IPv6 is off
                rows += Path(f"/proc/{pid}/net/tcp6").read_text().splitlines()[1:]
        except OSError:  # gone meanwhile
            continue
        for line in rows:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                host, port = f[1].split(":")
                found.add((pid, name, _ip(host), int(port, 16)))
    return found


def _not_loopback(listening) -> list[tuple[int, str, str, int]]:
    def loopback(addr: str) -> bool:
        ip = ipaddress.ip_address(addr)
        return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)

    return sorted(s for s in listening if not loopback(s[2]))


def _stop(procs: dict[int, int], timeout: float = 10) -> None:
    """SIGTERM the processes `procs` (pid -> start time) that still run, SIGKILL them after
    `timeout` s; a pid now held by a newer process is left alone."""
    def alive() -> list[int]:
        now = _procs()
        return [p for p, t in procs.items() if p in now and now[p][3] == t and now[p][0] not in "ZX"]

    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        for pid in alive():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait
        while alive() and time.time() < deadline:
            time.sleep(0.05)


class RayHead:
    """A `ray start --head --block` process (a new session) and what runs under it."""

    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc, self.port, self.address = proc, port, f"127.0.0.1:{port}"
        self.seen: dict[int, int] = {}  # pid -> start time of every cluster process seen
        self.listening: set[tuple[int, str, str, int]] = set()  # sockets seen during sweeps

    def pids(self) -> dict[int, int]:
        tree = _tree(self.proc.pid)
        self.seen |= tree
        return tree


def _ray_bin() -> str:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install grokscope[ray])")
    if not Path("/proc/self/net/tcp").is_file():
        pytest.skip("the Ray tests list listening sockets in /proc (Linux)")
    return shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A one-node Ray cluster with 2 CPUs listening on 127.0.0.1 only, in its own temporary
    directory; afterwards only the processes it started are stopped (never `ray stop`, which
    stops every Ray cluster on the machine)."""
    ray_bin = _ray_bin()
    temp = Path(tempfile.mkdtemp(prefix="gs-ray-"))  # short: Ray's unix socket paths live in it
    port, client_port = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("ray") / "head.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [ray_bin, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
             f"--ray-client-server-port={client_port}", "--dashboard-host=127.0.0.1",
             "--include-dashboard=false", "--num-cpus=2", "--disable-usage-stats", f"--temp-dir={temp}"],
            env={**os.environ, **RAY_ENV}, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
            start_new_session=True)
    head = RayHead(proc, port)
    try:
        deadline = time.time() + 120
        while not (temp / "ray_current_cluster").is_file():  # written once the node is up
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield head
    finally:
        head.pids()
        # `ray start --block` stops its node in order on SIGTERM (~2 s); SIGTERMed all at once,
        # the GCS and the raylet wait for each other until SIGKILLed
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        _stop(head.seen)  # whatever it left, workers whose raylet died included
        proc.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_unreachable_address_is_one_line_and_writes_nothing(tmp_path, capsys):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install grokscope[ray])")
    out = tmp_path / "sw"
    address = f"127.0.0.1:{_free_port()}"
    code = main(["sweep", *SWEEP, "--out", str(out), "--executor", "ray", "--address", address])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "grokscope: error: address: no Ray cluster at '127.0.0.1:" in err and not out.exists()


@pytest.fixture
def ray_sweep(tmp_path, ray_head):
    """start(out): `grokscope sweep --executor ray` on the test cluster, in a subprocess (a new
    session) with Ray's loopback environment; one still running at teardown is stopped."""
    started = []

    def start(out) -> subprocess.Popen:
        args = [sys.executable, "-m", "grokscope", "sweep", *SWEEP, "--out", str(out), "--executor", "ray",
                "--address", ray_head.address]
        with open(tmp_path / "stdout.txt", "wb") as so, open(tmp_path / "stderr.txt", "wb") as se:
            started.append(subprocess.Popen(args, stdout=so, stderr=se, env={**os.environ, **RAY_ENV},
                                            start_new_session=True))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            _stop(_tree(proc.pid))
            proc.wait(timeout=10)


def _watch(proc: subprocess.Popen, head: RayHead, timeout: float) -> set[tuple[int, str, str, int]]:
    """Wait for `proc` (a sweep on `head`), meanwhile listing the listening sockets of the cluster
    and of the sweep every 0.2 s; returns all of them (also kept in head.listening)."""
    deadline = time.time() + timeout
    listening = set()
    while proc.poll() is None:
        assert time.time() < deadline, f"the sweep ran past {timeout} s"
        listening |= _listening({**head.pids(), **_tree(proc.pid)})
        time.sleep(0.2)
    head.listening |= listening
    return listening


def _assert_loopback_only(listening, head: RayHead) -> None:
    shown = "\n".join(f"{name}[{pid}] {addr}:{port}" for pid, name, addr, port in sorted(listening))
    assert _not_loopback(listening) == [], f"listening beyond loopback:\n{shown}"
    assert ("gcs_server", "127.0.0.1", head.port) in {(n, a.removeprefix("::ffff:"), p)
                                                       for _, n, a, p in listening}, shown


def test_ray_matches_local(tmp_path, ray_head, ray_sweep, reference):
    proc = ray_sweep(tmp_path / "sw")
    listening = _watch(proc, ray_head, timeout=300)
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()
    assert "on ray (127.0.0.1:" in (tmp_path / "stdout.txt").read_text()
    assert _results(tmp_path / "sw") == reference
    _assert_loopback_only(listening, ray_head)  # the GCS, the raylet, its workers and the sweep's driver
    assert {name for _, name, _, _ in listening} >= {"gcs_server", "raylet", "python"}
    assert any(name.startswith("ray::") for _, name, _, _ in listening)  # a worker


def test_ray_worker_killed_mid_sweep_still_completes(tmp_path, ray_head, ray_sweep, reference):
    out = tmp_path / "sw"
    proc = ray_sweep(out)
    killed = None
    deadline = time.time() + 120
    while killed is None:
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        assert time.time() < deadline, "no run started"
        runs = out / "runs"
        partial = [p for p in runs.iterdir() if p.name.startswith(".partial.")] if runs.is_dir() else []
        if partial:  # .partial.HOST.PID.NAME: PID is the Ray worker training that run right now
            pid = int(partial[0].name.split(".")[3])
            os.kill(pid, signal.SIGKILL)
            killed = (pid, partial[0].name.split(".", 4)[4])
        time.sleep(0.01)
    listening = _watch(proc, ray_head, timeout=300)
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()
    _assert_loopback_only(listening, ray_head)  # the retried run's worker too
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    assert _results(out) == reference  # the killed run was retried on another worker
    assert killed[1] in {r["run"] for r in reference}
    assert [p.name for p in (out / "runs").iterdir() if p.name.startswith(".")] == []


def test_ray_cluster_listens_on_loopback_only(ray_head):
    """`ss -ltnp` shows the cluster on 127.0.0.1 only: its processes now, and everything the
    sweeps above saw (drivers and workers included)."""
    listening = _listening(ray_head.pids()) | ray_head.listening
    _assert_loopback_only(listening, ray_head)
