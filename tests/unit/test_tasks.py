"""Tests for grokscope.tasks: tables against brute force, splits, label noise, validation."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from grokscope.errors import ConfigError
from grokscope.tasks import MODULAR_OPS, PERMUTATION_OPS, Task, build_task, validate_task

# ---------------------------------------------------------------- brute force references


def _div(x: int, y: int, p: int) -> int:
    """x / y mod p by searching z with z*y == x (mod p); independent of pow(y, -1, p)."""
    matches = [z for z in range(p) if (z * y) % p == x]
    assert len(matches) == 1
    return matches[0]


def _brute_modular(op: str, x: int, y: int, p: int) -> int | None:
    """Answer of op(x, y) mod p, or None when the pair is not in the table."""
    if op == "x+y":
        return (x + y) % p
    if op == "x-y":
        return (x - y) % p
    if op == "x*y":
        return (x * y) % p
    if op == "x/y":
        return None if y == 0 else _div(x, y, p)
    if op == "x/y if y odd else x-y":
        return _div(x, y, p) if y % 2 == 1 else (x - y) % p
    if op == "x^2+y^2":
        return (x**2 + y**2) % p
    if op == "x^2+xy+y^2":
        return (x**2 + x * y + y**2) % p
    if op == "x^2+xy+y^2+x":
        return (x**2 + x * y + y**2 + x) % p
    if op == "x^3+xy":
        return (x**3 + x * y) % p
    if op == "x^3+xy^2+y":
        return (x**3 + x * y**2 + y) % p
    raise AssertionError(op)


def _compose(a: tuple, b: tuple) -> tuple:
    """(a*b)[i] = a[b[i]]: apply b first, then a."""
    return tuple(a[b[i]] for i in range(len(a)))


def _invert(a: tuple) -> tuple:
    inv = [0] * len(a)
    for i, v in enumerate(a):
        inv[v] = i
    return tuple(inv)


def _brute_perm(op: str, a: tuple, b: tuple) -> tuple:
    if op == "x*y":
        return _compose(a, b)
    if op == "x*y*x^-1":
        return _compose(_compose(a, b), _invert(a))
    if op == "x*y*x":
        return _compose(_compose(a, b), a)
    raise AssertionError(op)


# ---------------------------------------------------------------- modular tables


def test_op_lists():
    assert MODULAR_OPS == (
        "x+y", "x-y", "x*y", "x/y", "x/y if y odd else x-y", "x^2+y^2",
        "x^2+xy+y^2", "x^2+xy+y^2+x", "x^3+xy", "x^3+xy^2+y",
    )  # fmt: skip
    assert PERMUTATION_OPS == ("x*y", "x*y*x^-1", "x*y*x")


@pytest.mark.parametrize("p", [7, 11, 23])
@pytest.mark.parametrize("op", MODULAR_OPS)
def test_modular_table_matches_brute_force(op, p):
    task = build_task("modular", op, p=p)
    expected = [
        (x, y, z)
        for x in range(p)
        for y in range(p)
        if (z := _brute_modular(op, x, y, p)) is not None
    ]
    got = list(zip(task.x.tolist(), task.y.tolist(), task.z.tolist(), strict=True))
    assert got == expected  # same rows, same row-major order
    assert len(got) == (p * (p - 1) if op == "x/y" else p * p)
    for t in (task.x, task.y, task.z, task.train_idx, task.test_idx, task.train_labels):
        assert t.dtype == torch.long
    assert task.n_values == task.n_classes == p


def test_modular_composite_p_allowed_for_non_division_ops():
    task = build_task("modular", "x*y", p=96)
    assert task.meta["n_table"] == 96 * 96
    assert int(task.z[5 * 96 + 30]) == (5 * 30) % 96


# ---------------------------------------------------------------- permutation tables


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("op", PERMUTATION_OPS)
def test_permutation_table_matches_brute_force(op, n):
    task = build_task("permutation", op, n=n)
    elems = list(itertools.permutations(range(n)))
    index = {e: i for i, e in enumerate(elems)}
    assert task.meta["elements"] == [list(e) for e in elems]
    assert task.n_values == len(elems)
    expected = [
        (i, j, index[_brute_perm(op, a, b)])
        for i, a in enumerate(elems)
        for j, b in enumerate(elems)
    ]
    got = list(zip(task.x.tolist(), task.y.tolist(), task.z.tolist(), strict=True))
    assert got == expected


def test_s5_composition_spot_checks():
    task = build_task("permutation", "x*y", n=5)
    elems = [tuple(e) for e in task.meta["elements"]]
    m = len(elems)
    assert m == 120 and task.z.numel() == m * m
    gen = torch.Generator().manual_seed(123)
    for row in torch.randint(0, m * m, (200,), generator=gen).tolist():
        a, b = elems[task.x[row]], elems[task.y[row]]
        assert elems[task.z[row]] == tuple(a[b[i]] for i in range(5))
    # A concrete case: b = swap(0,1) first, then a = 3-cycle 0->1->2->0.
    a, b = (1, 2, 0, 3, 4), (1, 0, 2, 3, 4)
    row = elems.index(a) * m + elems.index(b)
    assert elems[task.z[row]] == (2, 1, 0, 3, 4)


def test_permutation_identity_behaves():
    task = build_task("permutation", "x*y", n=4)
    m = task.n_values
    ident = 0  # permutations() yields the identity first
    assert task.meta["elements"][ident] == [0, 1, 2, 3]
    z = task.z.view(m, m)  # z[x, y]
    assert torch.equal(z[ident], torch.arange(m))  # e*y = y
    assert torch.equal(z[:, ident], torch.arange(m))  # x*e = x
    conj = build_task("permutation", "x*y*x^-1", n=4).z.view(m, m)
    assert torch.equal(conj[:, ident], torch.full((m,), ident))  # x e x^-1 = e
    assert torch.equal(conj[ident], torch.arange(m))  # e y e^-1 = y


def test_s6_builds():
    task = build_task("permutation", "x*y*x", n=6)
    assert task.n_values == 720
    assert task.z.numel() == task.x.numel() == 720 * 720
    assert int(task.z.min()) >= 0 and int(task.z.max()) < 720


# ---------------------------------------------------------------- split


def test_split_partitions_the_table():
    task = build_task("modular", "x+y", p=23, train_fraction=0.3, split_seed=4)
    n = 23 * 23
    assert task.train_idx.numel() == round(0.3 * n)
    assert task.train_idx.numel() + task.test_idx.numel() == n
    both = torch.cat([task.train_idx, task.test_idx])
    assert torch.equal(torch.sort(both).values, torch.arange(n))  # disjoint, covers all
    assert torch.equal(task.train_idx, torch.sort(task.train_idx).values)
    assert torch.equal(task.test_idx, torch.sort(task.test_idx).values)
    assert task.meta["n_train"] == task.train_idx.numel()
    assert task.meta["n_test"] == task.test_idx.numel()
    assert task.meta["n_table"] == n


def test_split_is_deterministic_and_seed_dependent():
    a = build_task("modular", "x-y", p=23, split_seed=1)
    b = build_task("modular", "x-y", p=23, split_seed=1)
    c = build_task("modular", "x-y", p=23, split_seed=2)
    assert torch.equal(a.train_idx, b.train_idx)
    assert torch.equal(a.test_idx, b.test_idx)
    assert not torch.equal(a.train_idx, c.train_idx)


def test_split_follows_randperm_recipe():
    task = build_task("modular", "x+y", p=11, train_fraction=0.25, split_seed=9)
    perm = torch.randperm(121, generator=torch.Generator().manual_seed(9))
    assert torch.equal(task.train_idx, torch.sort(perm[:30]).values)


def test_train_fraction_counts_valid_pairs():
    task = build_task("modular", "x/y", p=11, train_fraction=0.5)
    assert task.meta["n_table"] == 110
    assert task.train_idx.numel() == 55
    assert task.test_idx.numel() == 55
    assert bool((task.y[task.train_idx] != 0).all())


def test_split_is_clipped_to_leave_both_sides_nonempty():
    tiny = build_task("modular", "x+y", p=3, train_fraction=0.01)
    assert tiny.train_idx.numel() == 1
    huge = build_task("modular", "x+y", p=3, train_fraction=0.99)
    assert huge.test_idx.numel() == 1


# ---------------------------------------------------------------- label noise


def test_no_noise_by_default():
    task = build_task("modular", "x+y", p=23)
    assert torch.equal(task.train_labels, task.z[task.train_idx])
    assert not bool(task.noisy.any())
    assert task.noisy.dtype == torch.bool
    assert task.meta["n_noisy"] == 0


def test_label_noise():
    task = build_task("modular", "x*y", p=23, train_fraction=0.4, label_noise=0.2, split_seed=3)
    truth = task.z[task.train_idx]
    n_train = task.train_idx.numel()
    n_noisy = round(0.2 * n_train)
    assert int(task.noisy.sum()) == n_noisy == task.meta["n_noisy"]
    assert task.noisy.shape == task.train_labels.shape == (n_train,)
    assert bool((task.train_labels[task.noisy] != truth[task.noisy]).all())
    assert torch.equal(task.train_labels[~task.noisy], truth[~task.noisy])
    assert int(task.train_labels.min()) >= 0 and int(task.train_labels.max()) < 23
    # Same split as the noise-free task: noise does not touch the split or the test table.
    clean = build_task("modular", "x*y", p=23, train_fraction=0.4, split_seed=3)
    assert torch.equal(task.train_idx, clean.train_idx)
    assert torch.equal(task.test_idx, clean.test_idx)
    assert torch.equal(task.z, clean.z)


def test_label_noise_is_deterministic():
    kw = dict(p=23, label_noise=0.3, split_seed=5)
    a, b = build_task("modular", "x+y", **kw), build_task("modular", "x+y", **kw)
    assert torch.equal(a.train_labels, b.train_labels)
    assert torch.equal(a.noisy, b.noisy)
    c = build_task("modular", "x+y", **{**kw, "split_seed": 6})
    assert not torch.equal(a.noisy, c.noisy)


def test_label_noise_on_permutations():
    task = build_task("permutation", "x*y", n=3, label_noise=0.5)
    truth = task.z[task.train_idx]
    assert int(task.noisy.sum()) == round(0.5 * task.train_idx.numel())
    assert bool((task.train_labels[task.noisy] != truth[task.noisy]).all())


# ---------------------------------------------------------------- tokens, meta


def test_tokens_layout():
    task = build_task("modular", "x+y", p=7)
    assert (task.op_token, task.eq_token, task.vocab_size) == (7, 8, 9)
    all_tokens = task.tokens()
    assert all_tokens.shape == (49, 4) and all_tokens.dtype == torch.long
    assert torch.equal(all_tokens[:, 0], task.x)
    assert torch.equal(all_tokens[:, 2], task.y)
    assert bool((all_tokens[:, 1] == 7).all()) and bool((all_tokens[:, 3] == 8).all())
    part = task.tokens(task.train_idx)
    assert part.shape == (task.train_idx.numel(), 4)
    row = int(task.train_idx[0])
    assert part[0].tolist() == [int(task.x[row]), 7, int(task.y[row]), 8]


def test_meta_is_json_serialisable():
    mod = build_task("modular", "x/y", p=11, label_noise=0.1)
    meta = json.loads(json.dumps(mod.meta))
    assert meta["kind"] == "modular" and meta["op"] == "x/y" and meta["p"] == 11
    assert meta["n_table"] == 110 and meta["n_noisy"] == mod.meta["n_noisy"] > 0
    perm = build_task("permutation", "x*y*x", n=3)
    meta = json.loads(json.dumps(perm.meta))
    assert meta["n"] == 3 and len(meta["elements"]) == 6
    assert "p" not in meta and "n" not in mod.meta


def test_task_is_frozen():
    task = build_task("modular", "x+y", p=5)
    assert isinstance(task, Task)
    with pytest.raises(AttributeError):
        task.op = "x-y"


# ---------------------------------------------------------------- validation

_GOOD = dict(kind="modular", op="x+y", p=97, n=5, train_fraction=0.5, label_noise=0.0)


@pytest.mark.parametrize(
    "changes, match",
    [
        # the registry is open: kinds registered by plug-ins (other test modules) are listed too
        ({"kind": "foo"}, r"^task\.kind: must be one of 'modular', 'permutation'(, '\w+')*, got 'foo'$"),
        ({"kind": None}, r"^task\.kind: "),
        ({"op": "x%y"}, r"^task\.op: unknown modular op 'x%y'; choose one of 'x\+y', 'x-y', "),
        ({"kind": "permutation", "op": "x+y"}, r"^task\.op: unknown permutation op 'x\+y'"),
        ({"p": 2}, r"^task\.p: must be an integer >= 3, got 2$"),
        ({"p": 7.0}, r"^task\.p: must be an integer"),
        ({"p": True}, r"^task\.p: must be an integer"),
        ({"p": 10_007}, r"^task\.p: must be <= 10000"),
        ({"op": "x/y", "p": 96}, r"^task\.p: must be a prime for op 'x/y', got 96$"),
        ({"op": "x/y if y odd else x-y", "p": 9}, r"^task\.p: must be a prime"),
        ({"kind": "permutation", "op": "x*y", "n": 7},
         r"^task\.n: must be between 3 and 6 for permutation tasks, got 7$"),
        ({"kind": "permutation", "op": "x*y", "n": 2}, r"^task\.n: "),
        ({"kind": "permutation", "op": "x*y", "n": True}, r"^task\.n: "),
        ({"train_fraction": 1.5}, r"^task\.train_fraction: must be in \(0, 1\), got 1\.5$"),
        ({"train_fraction": 0}, r"^task\.train_fraction: "),
        ({"train_fraction": 1.0}, r"^task\.train_fraction: "),
        ({"train_fraction": float("nan")}, r"^task\.train_fraction: "),
        ({"train_fraction": "0.5"}, r"^task\.train_fraction: "),
        ({"label_noise": -0.1}, r"^task\.label_noise: must be in \[0, 1\), got -0\.1$"),
        ({"label_noise": 1.0}, r"^task\.label_noise: "),
        ({"label_noise": False}, r"^task\.label_noise: "),
        ({"skew": -1}, r"^task\.skew: must be in \[0, 4\], got -1$"),
        ({"skew": 5.0}, r"^task\.skew: "),
        ({"skew": float("nan")}, r"^task\.skew: "),
    ],
)  # fmt: skip
def test_validation_errors(changes, match):
    args = {**_GOOD, **changes}
    with pytest.raises(ConfigError, match=match):
        validate_task(**args)
    kind, op = args.pop("kind"), args.pop("op")
    with pytest.raises(ConfigError, match=match):
        build_task(kind, op, **args)


def test_error_messages_are_one_line():
    with pytest.raises(ConfigError) as info:
        validate_task("modular", "x%y", 97, 5, 0.5, 0.0)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_valid_arguments_pass():
    assert validate_task(**_GOOD) is None
    validate_task("permutation", "x*y*x^-1", 97, 6, 0.9, 0.5)
    validate_task("modular", "x/y", 9973, 5, 0.5, 0)  # largest prime <= 10000


# ---------------------------------------------------------------- biased data (task.skew)


def test_skew_over_represents_small_operands_deterministically():
    plain = build_task("modular", "x+y", p=31, train_fraction=0.5, split_seed=3)
    assert "skew" not in plain.meta  # skew 0: the uniform split, unchanged
    assert torch.equal(plain.train_idx, build_task("modular", "x+y", p=31, train_fraction=0.5, split_seed=3,
                                                   skew=0.0).train_idx)
    shares = []
    for s in (0.5, 1.0, 2.0):
        t = build_task("modular", "x+y", p=31, train_fraction=0.5, split_seed=3, skew=s)
        again = build_task("modular", "x+y", p=31, train_fraction=0.5, split_seed=3, skew=s)
        assert torch.equal(t.train_idx, again.train_idx) and t.meta["n_train"] == plain.meta["n_train"]
        assert sorted(t.train_idx.tolist() + t.test_idx.tolist()) == list(range(31 * 31))
        shares.append(t.meta["train_small_share"])
        small = (t.x[t.train_idx] < 15.5) & (t.y[t.train_idx] < 15.5)
        assert t.meta["train_small_share"] == round(float(small.double().mean()), 4)
    uniform = float(((plain.x[plain.train_idx] < 15.5) & (plain.y[plain.train_idx] < 15.5)).double().mean())
    assert uniform < 0.3 < shares[0] < shares[1] < shares[2]


def test_skew_with_augmentation_is_refused():
    from grokscope.config import RunConfig, TaskConfig, validate

    with pytest.raises(ConfigError, match="task.skew: draws the training pairs itself"):
        validate(RunConfig(task=TaskConfig(skew=1.0, augment="commutative")))


def test_skew_on_a_kind_without_it_is_refused():
    from grokscope.config import RunConfig, TaskConfig, validate

    with pytest.raises(ConfigError, match="task.skew: only the table tasks .* 'parity' has no skew"):
        validate(RunConfig(task=TaskConfig(kind="parity", skew=1.0)))
