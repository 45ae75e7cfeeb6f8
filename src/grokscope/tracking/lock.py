"""One writer per directory: an exclusive, non-blocking lock on DIR/.lock.

`RunLock` takes `fcntl.flock(LOCK_EX | LOCK_NB)` on DIR/.lock and writes the holder's PID, host and
command into it. A second writer (train, resume, analyze, or a sweep into the same folder) fails at
once with one line naming the holder. The kernel drops a flock when its process dies, so a lock
left by a killed process is free again: the next writer takes it over (and says whose it was).
Readers (`show`, `report` of a finished run) never take the lock.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from grokscope.errors import ConfigError

LOCK_NAME = ".lock"


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def pid_alive(pid: object) -> bool:
    """Whether a process with this id runs on this machine (a non-positive or non-int id: no)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """`with RunLock(directory, what="run"):` holds DIR/.lock for the block; ConfigError if another
    process holds it. `taken_over` names the dead holder of a stale lock that was taken over."""

    def __init__(self, directory: str | os.PathLike, what: str = "run"):
        self.dir, self.what = Path(directory), what
        self.path = self.dir / LOCK_NAME
        self.fd: int | None = None
        self.taken_over: dict | None = None

    def acquire(self) -> RunLock:
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            h = _holder(self.path)
            who = f"pid {h.get('pid', '?')} on host {h.get('host', '?')}"
            raise ConfigError(f"{self.what}: {str(self.dir)!r} is being written by {who}"
                              f"{' (' + h['command'] + ')' if h.get('command') else ''}; "
                              "wait for it to end or stop it") from None
        previous = _holder(self.path)
        if previous.get("pid") and not (previous.get("host") == socket.gethostname()
                                         and previous.get("pid") == os.getpid()):
            self.taken_over = previous  # its holder is gone (a flock dies with its process)
        argv = [os.path.basename(sys.argv[0]), *sys.argv[1:]] if sys.argv else []
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(argv)[:200]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        import fcntl

        try:
            os.ftruncate(self.fd, 0)  # an empty lock file: nobody holds it
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder(directory: str | os.PathLike) -> dict | None:
    """Who holds DIR/.lock now ({'pid', 'host', 'command'}), or None when nobody does."""
    h = _holder(Path(directory) / LOCK_NAME)
    if not h or (h.get("host") == socket.gethostname() and not pid_alive(h.get("pid"))):
        return None
    return h
