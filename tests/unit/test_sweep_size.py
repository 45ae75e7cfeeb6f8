"""Sweep size: runs are counted before any is built, large sweeps are refused in one line, and the
fast expansion gives exactly the runs of applying each cell's overrides and validating it.

Measured here (2 shared cores, 1 thread, `python benchmarks/sweep_expand.py`): a 100 x 100 spec
(10,000 runs over optim.lr x optim.weight_decay) expands in 1.8 s, 0.18 ms a run; before, expand
took 4.5 ms a run (45 s for 10,000), and a 1000 x 1000 spec ran for minutes without a word. The
refusal of 1,000,000 runs takes well under a millisecond.
"""

from __future__ import annotations

import time
import typing
from dataclasses import dataclass, replace

import pytest

from grokscope.config import apply_overrides, validate
from grokscope.errors import ConfigError
from grokscope.sweep import spec as spec_mod
from grokscope.sweep.spec import MAX_RUNS, SweepSpec, _labels, parse_axis, run_name
from tests.conftest import option_only_task_kinds


def _grid(n_lr: int, n_wd: int, seeds: tuple[int, ...] | None = None, **kw) -> SweepSpec:
    return SweepSpec(axes=(parse_axis("optim.lr", f"log:1e-4:1e-2:{n_lr}"),
                           parse_axis("optim.weight_decay", f"0:1:{n_wd}")), seeds=seeds, **kw)


def _reference(spec: SweepSpec) -> list[tuple[str, dict, dict, int]]:
    """The runs as expand made them before: apply_overrides on every cell, validate every run."""
    import itertools

    from grokscope.config import to_dict

    base = spec.base_config()
    seeds = spec.seeds if spec.seeds is not None else (base.seed,)
    labels = _labels([a.field for a in spec.axes])
    out = []
    for combo in itertools.product(*(a.values for a in spec.axes)):
        texts = dict(zip([a.field for a in spec.axes], combo))
        cell = apply_overrides(base, texts)
        for seed in seeds:
            name = run_name(labels, texts, seed)
            cfg = validate(replace(cell, seed=seed, name=f"{base.name}-{name}" if base.name else name))
            values = {f: spec_mod.typed_value(f, t, cell) for f, t in texts.items()}
            out.append((name, to_dict(cfg), values, seed))
    return out


def _same_as_reference(spec: SweepSpec) -> None:
    from grokscope.config import to_dict

    got = [(r.name, to_dict(r.config), r.values, r.seed) for r in spec.expand()]
    assert got == _reference(spec)


# ------------------------------------------------------------------------------- count and refusal


def test_count_is_the_product_of_axes_and_seeds_without_building_anything(monkeypatch):
    def no(*a, **k):
        raise AssertionError("nothing may be built or validated to count a sweep")

    monkeypatch.setattr(SweepSpec, "base_config", no)
    monkeypatch.setattr(spec_mod, "validate", no)
    monkeypatch.setattr(spec_mod, "apply_overrides", no)
    assert _grid(1000, 1000).count() == 1_000_000
    assert _grid(7, 3, seeds=(0, 1, 5)).count() == 63
    assert SweepSpec().count() == 1  # no axes, the base config's seed
    assert SweepSpec(seeds=(0, 1)).count() == 2


def test_a_million_runs_are_refused_in_one_line_before_anything_is_built(monkeypatch):
    def no(*a, **k):
        raise AssertionError("refused sweeps build nothing")

    monkeypatch.setattr(SweepSpec, "base_config", no)
    monkeypatch.setattr(spec_mod, "validate", no)
    t = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        _grid(1000, 1000).expand()
    assert time.perf_counter() - t < 1.0
    assert str(e.value) == ("sweep: 1,000,000 runs (1000 x 1000 x 1 seed) is more than 10,000; "
                            "pass --max-runs N to allow it")
    with pytest.raises(ConfigError, match=r"^sweep: 30 runs \(5 x 3 x 2 seeds\) is more than 29; pass --max"):
        _grid(5, 3, seeds=(0, 1)).expand(max_runs=29)
    with pytest.raises(ConfigError, match=r"^sweep: 10,001 runs \(1 x 10001 x 1 seed\)"):
        SweepSpec(axes=(parse_axis("optim.lr", "1e-3"),
                        parse_axis("train.steps", ",".join(str(i) for i in range(1, 10_002))))).expand()


def test_the_cap_is_inclusive_and_can_be_raised_or_lifted():
    assert MAX_RUNS == 10_000
    spec = _grid(5, 3, seeds=(0, 1))
    assert len(spec.expand(max_runs=30)) == 30
    assert spec.check_size(30) == 30 and spec.check_size(None) == 30
    assert len(_grid(2, 2).expand(max_runs=None)) == 4


# ---------------------------------------------------------------------- the fast path is the old one


def test_fast_expansion_equals_apply_overrides_and_validate_per_run():
    _same_as_reference(_grid(4, 3, seeds=(0, 2)))
    _same_as_reference(SweepSpec(overrides=(("train.steps", "300"),),
                                 axes=(parse_axis("task.op", "x+y,x-y,x*y"), parse_axis("task.p", "23,31"),
                                       parse_axis("model.n_heads", "1,4"),
                                       parse_axis("optim.betas", [[0.9, 0.98], [0.8, 0.99]]),
                                       parse_axis("task.split_seed", "none,3")), seeds=(1,)))
    _same_as_reference(SweepSpec(preset="demo", axes=(parse_axis("model.dropout", "0,0.1"),
                                                      parse_axis("train.dropout_final", "0,0.05"))))


def test_fields_that_are_only_jointly_invalid_are_still_caught():
    # each value is valid alone; only the combination is not
    with pytest.raises(ConfigError, match=r"^task\.p: must be a prime .*\(in sweep run op-x%2Fy_p-33_seed-0"):
        SweepSpec(axes=(parse_axis("task.op", "x+y,x/y"), parse_axis("task.p", "31,33"))).expand()
    with pytest.raises(ConfigError, match=r"^model\.n_heads: must divide model\.d_model=48.*"
                                          r"\(in sweep run d_model-48_n_heads-5_seed-0\)$"):
        SweepSpec(axes=(parse_axis("model.d_model", "40,48"), parse_axis("model.n_heads", "4,5"))).expand()


@dataclass(frozen=True)
class _Opts:
    k: int = 2
    """Size."""
    noise: float = 0.0
    """Noise."""


@dataclass(frozen=True)
class _Opts2:
    k: float = 1.5
    """Typed differently from _Opts.k."""


@pytest.fixture
def two_kinds():
    with option_only_task_kinds(sizetoy=_Opts, sizetoy2=_Opts2) as names:
        yield names


def test_plugin_options_are_typed_by_each_cells_task_kind(two_kinds):
    spec = SweepSpec(axes=(parse_axis("task.kind", ",".join(two_kinds)), parse_axis("task.options.k", "3,4")))
    runs = spec.expand()
    assert [(r.config.task.kind, r.config.task.options) for r in runs] == [
        ("sizetoy", {"k": 3}), ("sizetoy", {"k": 4}), ("sizetoy2", {"k": 3.0}), ("sizetoy2", {"k": 4.0})]
    assert [type(r.values["task.options.k"]) for r in runs] == [int, int, float, float]
    _same_as_reference(spec)
    with pytest.raises(ConfigError, match=r"^task\.options\.noise: unknown option of task kind 'sizetoy2'"):
        SweepSpec(axes=(parse_axis("task.kind", ",".join(two_kinds)),
                        parse_axis("task.options.noise", "0.1"))).expand()


# -------------------------------------------------------------------------- progress and the cache


def test_long_expansions_report_progress(monkeypatch):
    monkeypatch.setattr(spec_mod, "PROGRESS_EVERY", 0.0)
    seen = []
    runs = _grid(32, 32).expand(progress=lambda done, total: seen.append((done, total)))
    assert len(runs) == 1024
    assert seen == [(i, 1024) for i in range(256, 1025, 256)]
    monkeypatch.setattr(spec_mod, "PROGRESS_EVERY", 3600.0)
    seen.clear()
    _grid(32, 32).expand(progress=lambda done, total: seen.append(done))
    assert seen == []  # a short one says nothing


def test_validation_resolves_each_config_class_once():
    from grokscope import validation

    assert validation.type_hints(spec_mod.RunConfig) == typing.get_type_hints(spec_mod.RunConfig)
    assert validation.type_hints(spec_mod.RunConfig) is validation.type_hints(spec_mod.RunConfig)


def test_ten_thousand_runs_expand_in_seconds():
    # 1.8 s measured here (benchmarks/sweep_expand.py); the bound leaves room for a busy CI core
    spec = _grid(100, 100)
    t = time.perf_counter()
    runs = spec.expand()
    seconds = time.perf_counter() - t
    assert len(runs) == 10_000 and len({r.name for r in runs}) == 10_000
    assert seconds < 30, f"10,000 runs took {seconds:.1f} s"
