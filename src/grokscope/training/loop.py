"""The training loop: RunConfig -> run directory (config, metrics, checkpoints, summary, figure)."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from grokscope import detect
from grokscope.config import RunConfig, to_dict, validate
from grokscope.errors import ConfigError
from grokscope.models import build_model
from grokscope.tasks import Task, build_task
from grokscope.tracking.rundir import FORMAT_VERSION, RunDir, atomic_write_json
from grokscope.training.checkpoint import save_checkpoint
from grokscope.training.losses import loss_fn
from grokscope.training.optim import build_optimizer, lr_at
from grokscope.training.schedules import StepSchedule

_EVAL_CHUNK = 65_536
_BATCH_SEED_OFFSET = 0x9E3779B9  # keeps the batch-order stream apart from the init stream


@dataclass
class RunResult:
    """What `train` returns: the run directory, its summary and its metric records."""

    path: Path
    summary: dict
    metrics: list[dict]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' requested but no CUDA device is available; use auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("train.device: 'mps' requested but MPS is not available; use auto or cpu")
    return torch.device(name)


def default_out(cfg: RunConfig, root: str | os.PathLike = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{cfg.name or 'run'}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


def check_out(out: str | os.PathLike) -> Path:
    """A run may only go into a new or empty directory: never clobber results."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out: {str(path)!r} is a file; give a directory path for the run")
    if path.is_dir() and any(path.iterdir()):
        raise ConfigError(f"out: {str(path)!r} already exists and is not empty; choose a new directory")
    return path


def versions() -> dict:
    from grokscope import __version__

    return {"grokscope": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


class _Sampler:
    """Seeded minibatches: successive slices of per-epoch permutations of the training set."""

    def __init__(self, n: int, batch_size: int | None, seed: int):
        self.n = n
        self.batch = n if batch_size is None else min(batch_size, n)
        self.gen = torch.Generator().manual_seed(seed + _BATCH_SEED_OFFSET)
        self.perm = torch.arange(n)
        self.pos = n  # forces a fresh permutation on the first draw

    def next(self) -> torch.Tensor | None:
        """Indices into the training set, or None for the full batch."""
        if self.batch >= self.n:
            return None
        if self.pos + self.batch > self.n:
            self.perm = torch.randperm(self.n, generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return idx

    def state(self) -> dict:
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos}


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokens: torch.Tensor, labels: torch.Tensor,
             loss: str = "ce", dtype: str = "float64") -> tuple[float, float]:
    """(mean loss, accuracy) of `model` on tokens (n, 4) with labels (n,), in chunks."""
    was_training = model.training
    model.eval()
    total_loss, correct, n = 0.0, 0, tokens.shape[0]
    for i in range(0, n, _EVAL_CHUNK):
        logits = model(tokens[i:i + _EVAL_CHUNK])  # (chunk, classes)
        lab = labels[i:i + _EVAL_CHUNK]
        total_loss += loss_fn(logits, lab, loss, dtype).item() * lab.shape[0]
        correct += (logits.argmax(-1) == lab).sum().item()
    model.train(was_training)
    return total_loss / max(n, 1), correct / max(n, 1)


def weight_norm(model: torch.nn.Module) -> float:
    """Global L2 norm of all parameters."""
    with torch.no_grad():
        return math.sqrt(sum(p.double().pow(2).sum().item() for p in model.parameters()))


def train(config: RunConfig, out: str | os.PathLike | None = None, *,
          progress: bool | None = None) -> RunResult:
    """Train one run into `out` (default runs/<time>-<name>) and return its result.

    Everything is checked before the directory is created, so bad input leaves nothing behind.
    """
    cfg = validate(config)
    device = resolve_device(cfg.train.device)
    rd = RunDir(check_out(out) if out is not None else default_out(cfg))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    task = build_task(cfg.task.kind, cfg.task.op, p=cfg.task.p, n=cfg.task.n,
                      train_fraction=cfg.task.train_fraction,
                      split_seed=cfg.effective_split_seed, label_noise=cfg.task.label_noise)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, task).to(device)
    optimizer = build_optimizer(cfg.optim, model.parameters())

    rd.path.mkdir(parents=True, exist_ok=True)
    rd.checkpoints.mkdir(exist_ok=True)
    config_dict = to_dict(cfg)
    atomic_write_json(rd.config, config_dict)
    base_summary = {"format_version": FORMAT_VERSION, "name": cfg.name, "task": task.meta,
                    "n_parameters": sum(p.numel() for p in model.parameters()),
                    "device": str(device), "versions": versions()}
    atomic_write_json(rd.summary, {**base_summary, "status": "running"})
    show = progress if progress is not None else (cfg.log.progress if cfg.log.progress is not None
                                                  else sys.stderr.isatty())
    with _sigterm_as_interrupt():
        status, records, wall = _run_steps(cfg, task, model, optimizer, rd, device, config_dict, show)
    last = records[-1] if records else {}
    summary = {
        **base_summary,
        "status": status,
        "wall_seconds": wall,
        "steps_done": last.get("step", 0),
        "final": {k: last.get(k) for k in ("train_acc", "test_acc", "train_loss", "test_loss")},
        "events": detect.events(records),
    }
    atomic_write_json(rd.summary, summary)
    if cfg.log.figure and records:
        from grokscope.report.plots import save_curves

        save_curves(records, rd.figures / "curves.png", title=cfg.name or rd.path.name,
                    events=summary["events"])
    return RunResult(rd.path, summary, records)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM ends the run like Ctrl-C: checkpoint, status 'interrupted' (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_steps(cfg: RunConfig, task: Task, model, optimizer, rd: RunDir, device, config_dict,
               show: bool) -> tuple[str, list[dict], float]:
    from tqdm import tqdm

    tr = cfg.train
    tokens = task.tokens().to(device)  # (n_table, 4)
    train_idx, test_idx = task.train_idx.to(device), task.test_idx.to(device)
    train_tokens, train_labels = tokens[train_idx], task.train_labels.to(device)
    test_tokens, test_labels = tokens[test_idx], task.z.to(device)[test_idx]
    sampler = _Sampler(train_tokens.shape[0], tr.batch_size, cfg.seed)
    evals = StepSchedule(tr.steps, tr.eval_per_decade, tr.eval_every)
    ckpts = StepSchedule(tr.steps, tr.checkpoint_per_decade, tr.checkpoint_every)
    check_every_step = device.type == "cpu"
    records: list[dict] = []
    status = "completed"
    t0 = time.perf_counter()
    bar = tqdm(total=tr.steps, disable=not show, dynamic_ncols=True, desc=cfg.name or "train")

    def checkpoint(step: int) -> None:
        save_checkpoint(rd.checkpoint_path(step), step=step, model=model, optimizer=optimizer,
                        config=config_dict, extra={"sampler": sampler.state(),
                                                   "torch_rng": torch.get_rng_state()})

    def record(step: int, lr: float) -> dict:
        train_loss, train_acc = evaluate(model, train_tokens, train_labels, tr.loss, tr.loss_dtype)
        test_loss, test_acc = evaluate(model, test_tokens, test_labels, tr.loss, tr.loss_dtype)
        r = {"step": step, "train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
             "test_acc": test_acc, "weight_norm": weight_norm(model), "lr": lr,
             "elapsed": time.perf_counter() - t0}
        rd.append_metrics(r)
        records.append(r)
        bar.set_postfix({"train acc": f"{train_acc:.3f}", "test acc": f"{test_acc:.3f}",
                         "loss": f"{train_loss:.3g}"}, refresh=False)
        return r

    lr = lr_at(cfg.optim, 0, tr.steps)
    record(0, lr)
    checkpoint(0)
    model.train()
    step = 0
    try:
        for step in range(1, tr.steps + 1):
            lr = lr_at(cfg.optim, step - 1, tr.steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = sampler.next()
            x, y = (train_tokens, train_labels) if idx is None else (train_tokens[idx], train_labels[idx])
            loss = loss_fn(model(x), y, tr.loss, tr.loss_dtype)
            if check_every_step and not math.isfinite(loss.item()):
                status = "diverged"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            bar.update(1)
            if step in evals:
                r = record(step, lr)
                if not (math.isfinite(r["train_loss"]) and math.isfinite(r["weight_norm"])):
                    status = "diverged"
                    break
            if step in ckpts:
                checkpoint(step)
    except KeyboardInterrupt:
        status = "interrupted"
        checkpoint(step)
    finally:
        bar.close()
    if status == "completed" and (not records or records[-1]["step"] != step):
        record(step, lr)
    return status, records, time.perf_counter() - t0
