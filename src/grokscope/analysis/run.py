"""`analyze(run_dir)`: the analyses over every checkpoint of a run, written next to it.

Writes RUN/analysis.jsonl (one line per checkpoint), RUN/analysis.json (key frequencies, final
numbers, the algorithm card, figure list) and figures under RUN/figures/, then re-renders
RUN/report.html with a "Learned algorithm" section. Everything is read from the run directory.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch

from grokscope import config as config_mod
from grokscope import detect
from grokscope.analysis import fourier, geometry, probe, progress
from grokscope.analysis.card import algorithm_card
from grokscope.errors import ConfigError
from grokscope.models import build_model
from grokscope.tasks import task_from_config, task_kinds
from grokscope.tracking.lock import RunLock
from grokscope.tracking.rundir import RunDir, atomic_write_json, atomic_write_text
from grokscope.training.checkpoint import CheckpointError, load_checkpoint


def _finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def _checkpoints(rd: RunDir, max_checkpoints: int | None) -> list[tuple[int, Path]]:
    ckpts = rd.list_checkpoints(include_latest=True)
    by_step: dict[int, Path] = {}
    for step, path in ckpts:  # step_*.pt wins over latest.pt at the same step
        if step not in by_step or path.name != RunDir.LATEST:
            by_step[step] = path
    out = sorted(by_step.items())
    if max_checkpoints and len(out) > max_checkpoints:
        idx = sorted({round(i * (len(out) - 1) / (max_checkpoints - 1)) for i in range(max_checkpoints)})
        out = [out[i] for i in idx]
    return out


class _Analyzer:
    def __init__(self, rd: RunDir, cfg):
        self.rd = rd
        self.cfg = cfg  # the run's RunConfig
        kind = self.cfg.task.kind
        if kind not in ("modular", "permutation"):
            raise ConfigError(f"analyze: the analyses read binary-operation tables (task kinds 'modular', "
                              f"'permutation') and image tasks; this run's task kind is {kind!r}")
        self.task = task_from_config(self.cfg)
        torch.manual_seed(0)
        self.model = build_model(self.cfg.model, self.task)
        self.p = self.task.n_values
        self.modular = self.task.kind == "modular"
        self.train_mask = self.task.train_mask
        # every (x, y) pair is in the table: its rows in x-outer grid order, for the 2-D analyses
        full = self.task.x.numel() == self.p**2
        self.grid_order = probe.grid_index(self.task).reshape(-1) if full else None  # (p*p,)
        # +1 / -1 for x+y / x-y mod p over the full grid (progress measures apply), else None
        self.sign = progress.SIGNS.get(self.task.op) if self.modular and full else None

    def load(self, path: Path) -> dict:
        state = load_checkpoint(path)["model"]
        self.model.load_state_dict(state)
        return state

    def logits(self, neurons: bool = True):
        return probe.run_table(self.model, self.task, neurons=neurons)

    def key_frequencies(self, logits: torch.Tensor) -> tuple[list[int], str]:
        """Key frequencies of the final model: from the logits' cos(w(x+y-z)) coefficients, else W_E."""
        if self.sign is not None:
            L = logits[self.grid_order].reshape(self.p, self.p, self.p)
            coef = fourier.logit_frequency_coefficients(L, self.p, sign=self.sign)
            keys, _ = fourier.key_frequencies(coef.clamp_min(0))
            if keys:
                return keys, "logits"
        if self.modular:
            keys, _ = fourier.key_frequencies(fourier.frequency_norms(self._embed(), self.p))
            return keys, "embedding"
        return [], "none"

    def _embed(self) -> torch.Tensor:
        E = probe.embeddings(self.model, self.p)
        return E["x"] if E["x"] is E["y"] else torch.cat([E["x"], E["y"]], dim=1)

    def measure(self, step: int, state: dict, keys: list[int], *, rqi: bool,
                table: tuple | None = None) -> tuple[dict, dict]:
        """One analysis.jsonl record, and the heavy per-checkpoint arrays kept for figures.

        `table`: the (logits, activations) of `self.logits()` when already computed for this state.
        """
        logits, acts = self.logits() if table is None else table
        z = self.task.z
        pred = logits.argmax(dim=1) == z
        rec: dict = {
            "step": step,
            "train_acc": float(pred[self.train_mask].double().mean()),
            "test_acc": float(pred[~self.train_mask].double().mean()),
            "sum_sq_weights": progress.sum_squared_weights(state),
        }
        arrays: dict = {"logits": logits}
        E = self._embed()
        if self.modular:
            we = fourier.frequency_norms(E, self.p)
            wu = fourier.frequency_norms(probe.unembedding(self.model), self.p)
            for name, norms in (("W_E", we), ("W_U", wu)):
                st = fourier.spectrum_stats(norms)
                rec[f"{name}_gini"], rec[f"{name}_ipr"] = st["gini"], st["ipr"]
                rec[f"{name}_top8_mass"] = st["top8_mass"]
                sq = norms.pow(2)
                rec[f"{name}_key_mass"] = (
                    float(sq[[k - 1 for k in keys]].sum() / sq.sum()) if keys and float(sq.sum()) else None
                )
            rec["W_E_spectrum"] = [round(float(v), 6) for v in we]
            arrays["W_E_norms"] = we
            n = self.p
            if acts is not None and self.grid_order is not None:
                nf = fourier.neuron_frequencies(acts[self.grid_order].reshape(n, n, -1), n)
                rec["neuron_clusters"] = nf["clusters"]
                arrays["neurons"] = nf
            if rqi:
                rec["rqi"] = _finite(geometry.rqi(E))
        if self.sign is not None:
            L = logits[self.grid_order]
            pm = progress.progress_measures(
                L, z[self.grid_order], self.train_mask[self.grid_order], self.p, keys, self.sign
            )
            for k in (
                "restricted_loss",
                "restricted_acc",
                "excluded_loss",
                "excluded_acc",
                "test_restricted_ratio",
                "train_loss",
                "test_loss",
            ):
                rec[k] = _finite(pm[k])
            n = self.p
            coef = fourier.logit_frequency_coefficients(L.reshape(n, n, n), n, sign=self.sign)
            rec["logit_key_coefs"] = {str(k): round(float(coef[k - 1]), 6) for k in keys}
        else:
            import torch.nn.functional as F

            for split, mask in (("train", self.train_mask), ("test", ~self.train_mask)):
                rec[f"{split}_loss"] = _finite(F.cross_entropy(logits[mask].double(), z[mask]).item())
        return rec, arrays


def _at_or_after(ckpts: list[int], step: int | None) -> int | None:
    """The first checkpoint at or after `step` (a map labelled "memorized" must show a memorized
    model, not the nearest earlier one); None when there is none."""
    return None if step is None else next((s for s in sorted(ckpts) if s >= step), None)


def analyze(
    run_dir,
    *,
    max_checkpoints: int | None = None,
    figures: bool = True,
    report: bool = True,
    rqi_every: int = 1,
    reference=None,
) -> dict:
    """Analyse every checkpoint of `run_dir`; returns the analysis.json dict (see module docstring).

    Image runs get the image analysis (`grokscope.analysis.images`); `reference`: a run directory
    whose final weight norm is the α = 1 reference there (default: the α = 1 initialization's)."""
    t0 = time.perf_counter()
    rd = RunDir(run_dir)
    if not rd.config.is_file():
        raise ConfigError(f"run: {str(run_dir)!r} is not a run directory (no config.json)")
    ckpts = _checkpoints(rd, max_checkpoints)
    if not ckpts:
        raise ConfigError(f"run: {str(run_dir)!r} has no checkpoints to analyse")
    cfg = config_mod.from_dict(rd.read_config_dict())
    if cfg.task.kind not in ("modular", "permutation") and cfg.task.kind in task_kinds():
        task = task_from_config(cfg)
        if task.input_kind == "image":
            from grokscope.analysis.images import analyze_images

            with RunLock(rd.path, "run"):
                return analyze_images(rd, cfg, task, ckpts, t0, figures=figures, report=report,
                                      reference=reference)
        if task.kind == "grid_goals":
            from grokscope.analysis.grid import analyze_grid

            if reference is not None:
                raise ConfigError("reference: only image runs take a reference run")
            with RunLock(rd.path, "run"):
                return analyze_grid(rd, cfg, task, ckpts, t0, figures=figures, report=report)
        if task.kind in ("composition", "comparison"):
            from grokscope.analysis.reasoning import analyze_reasoning

            if reference is not None:
                raise ConfigError("reference: only image runs take a reference run")
            with RunLock(rd.path, "run"):
                return analyze_reasoning(rd, cfg, task, ckpts, t0, figures=figures, report=report)
    elif reference is not None:
        raise ConfigError("reference: only image runs take a reference run")
    an = _Analyzer(rd, cfg)
    with RunLock(rd.path, "run"):  # one writer: not while the run trains, not two analyses at once
        return _analyze(rd, an, ckpts, t0, figures=figures, report=report, rqi_every=rqi_every)


def _skipped(error: Exception) -> None:
    print(f"grokscope: skipped {str(error).removeprefix('checkpoint: ')}", file=sys.stderr)


def _analyze(rd: RunDir, an: _Analyzer, ckpts: list, t0: float, *, figures: bool, report: bool,
             rqi_every: int) -> dict:
    with torch.no_grad():
        while True:  # the newest checkpoint that loads is the final one; corrupt ones are named
            try:
                final_state = an.load(ckpts[-1][1])
                break
            except CheckpointError as e:
                _skipped(e)
                ckpts = ckpts[:-1]
                if not ckpts:
                    raise ConfigError(f"run: {str(rd.path)!r} has no readable checkpoint to "
                                      "analyse") from None
        final_table = an.logits()  # the final checkpoint's forward pass serves the keys and its record
        keys, key_source = an.key_frequencies(final_table[0])
        records, arrays = [], {}
        for i, (step, path) in enumerate(ckpts):
            last = i == len(ckpts) - 1
            if last:  # the model ends on the final weights (details and figures read it)
                an.model.load_state_dict(final_state)
            try:
                state = final_state if last else an.load(path)
            except CheckpointError as e:
                _skipped(e)
                continue
            rec, arr = an.measure(step, state, keys, rqi=last or i % rqi_every == 0,
                                  table=final_table if last else None)
            records.append(rec)
            arrays[step] = arr
    metrics = rd.read_metrics()
    summary = rd.read_summary() if rd.summary.is_file() else {}
    split = summary.get("generalization_split", "test")
    phase = detect.analyze(metrics, split=split, n_eval=detect.eval_size(summary, split)) if metrics else None
    final = records[-1]
    extra = _final_details(an, arrays[ckpts[-1][0]], keys)
    card = algorithm_card(
        task=an.task,
        records=records,
        keys=keys,
        key_source=key_source,
        final=final,
        details=extra,
        phase=phase,
    )
    agent = an.cfg.agent.kind
    if agent != "supervised":  # a reinforcement-learning agent: the same analyses read its outputs
        what = "Q-values (dqn)" if agent == "dqn" else f"policy logits ({agent})"
        card["headline"] = f"Agent's {what}: {card['headline']}"
        card["evidence"].insert(0, f"The outputs analysed are the {what} of an agent that learned from "
                                   "rewards only (the table as a bandit: reward 1 for the answer on "
                                   "training contexts, nothing on held-out ones).")
    noisy = None
    if "train_noisy" in an.task.splits:  # label noise: the memorizing neurons (Doshi et al.)
        from grokscope.analysis import noise

        noisy = noise.noise_analysis(an.model, an.task, metrics)
        card["evidence"] += noise.card_lines(noisy)
    out = {
        "format_version": 1,
        "steps": [r["step"] for r in records],
        "key_freqs": keys,
        "key_source": key_source,
        "fourier_task": an.sign is not None,
        "final": final,
        "details": extra,
        "card": card,
        "figures": [],
        "seconds": None,
        **({"noise": noisy} if noisy is not None else {}),
    }
    atomic_write_text(rd.analysis_records, "".join(json.dumps(r) + "\n" for r in records))
    if figures:
        from grokscope.report import analysis_plots

        events = (phase or {}).get("events", {})
        key_steps = {
            "memorized": _at_or_after([s for s, _ in ckpts], events.get("memorized_step")),
            "generalized": _at_or_after([s for s, _ in ckpts], events.get("generalized_step")),
            "final": ckpts[-1][0],
        }
        out["figures"] = analysis_plots.draw_all(
            rd.figures, records=records, keys=keys, phase=phase,
            **_figure_data(an, records, arrays, keys, key_steps),
        )
        if noisy is not None:
            out["figures"].append(analysis_plots.label_noise(noisy, metrics, rd.figures / "label_noise.png"))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(rd.analysis, out)
    if report:
        from grokscope.report.html import write_report

        write_report(rd.path)
    return out


def _figure_data(an: _Analyzer, records: list[dict], arrays: dict, keys: list[int],
                 key_steps: dict[str, int | None]) -> dict:
    """The arrays the analysis figures draw (`report.analysis_plots.draw_all`'s keyword arguments):
    embedding coordinates, error maps at the key steps, neuron frequencies and attention."""
    E = an._embed()
    proj, ratio = geometry.pca(E, 4)
    panels = [("PC1", "PC2", proj[:, 0], proj[:, 1])]
    if proj.shape[1] >= 4:
        panels.append(("PC3", "PC4", proj[:, 2], proj[:, 3]))
    for k in (keys if an.modular else [])[:4]:
        c, share = geometry.frequency_plane(E, an.p, k)
        panels.append((f"cos {k} plane", f"sin {k} ({share:.0%} of var.)", c[:, 0], c[:, 1]))
    maps = {}
    for label, step in key_steps.items():
        if step is not None and step in arrays and f"step {step:,}" not in {t.split(": ")[-1] for t in maps}:
            maps[f"{label}: step {step:,}"] = probe.error_map(arrays[step]["logits"], an.task)
    return {
        "geometry_panels": (panels, ratio.tolist()),
        "maps": maps,
        "neuron_freqs": arrays[records[-1]["step"]].get("neurons"),
        "attention_weights": probe.attention_to_positions(an.model, an.task),
    }


def _final_details(an: _Analyzer, arr: dict, keys: list[int]) -> dict:
    """Numbers of the final checkpoint for the card: embedding spectrum, neurons, PCA, attention."""
    d: dict = {"p": an.p, "task": f"{an.task.op} ({an.task.kind})", "chance": 1 / an.task.n_classes}
    E = an._embed()
    _, ratio = geometry.pca(E, 6)
    d["pca_explained"] = [round(float(r), 4) for r in ratio]
    if an.modular and "W_E_norms" in arr:
        norms = arr["W_E_norms"]
        d["W_E"] = fourier.spectrum_stats(norms)
        d["circles"] = {str(k): round(geometry.frequency_plane(E, an.p, k)[1], 4) for k in keys}
    if "neurons" in arr:
        nf = arr["neurons"]
        d["neuron_clusters"] = nf["clusters"]
        d["n_neurons"] = int(nf["freq"].numel())
    att = probe.attention_to_positions(an.model, an.task)
    if att is not None:
        d["attention_from_answer"] = [[round(float(v), 4) for v in row] for row in att]
    return d
