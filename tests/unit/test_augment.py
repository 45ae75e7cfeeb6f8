"""Tests for grokscope.tasks.augment: commutative augmentation and its expected train fraction."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from grokscope.errors import ConfigError
from grokscope.tasks import build_task
from grokscope.tasks.augment import augment_commutative, expected_augmented_fraction


def _pairs(task, idx) -> set[tuple[int, int]]:
    """Set of (x, y) for table rows ``idx``."""
    return set(zip(task.x[idx].tolist(), task.y[idx].tolist()))


def _label_of(task) -> dict[tuple[int, int], tuple[int, bool]]:
    """(x, y) -> (training label, noisy flag) for every training pair."""
    keys = zip(task.x[task.train_idx].tolist(), task.y[task.train_idx].tolist())
    return dict(zip(keys, zip(task.train_labels.tolist(), task.noisy.tolist())))


@pytest.fixture
def add11():
    """x+y mod 11, 30% train, 20% label noise."""
    return build_task("modular", "x+y", p=11, train_fraction=0.3, split_seed=3, label_noise=0.2)


def test_swaps_of_train_pairs_are_in_train(add11):
    aug = augment_commutative(add11)
    train = _pairs(aug, aug.train_idx)
    assert _pairs(add11, add11.train_idx) <= train
    assert all((y, x) in train for x, y in train)
    assert len(train) > add11.train_idx.numel()  # something was actually added


def test_split_is_a_sorted_partition(add11):
    aug = augment_commutative(add11)
    rows = torch.cat([aug.train_idx, aug.test_idx])
    assert torch.equal(torch.sort(rows).values, torch.arange(aug.z.numel()))
    assert torch.equal(aug.train_idx, torch.sort(aug.train_idx).values)
    assert torch.equal(aug.test_idx, torch.sort(aug.test_idx).values)
    assert aug.train_labels.shape == aug.noisy.shape == aug.train_idx.shape
    assert aug.train_idx.dtype == aug.test_idx.dtype == aug.train_labels.dtype == torch.long


def test_labels_and_noise_propagate(add11):
    assert add11.noisy.any()
    aug = augment_commutative(add11)
    clean = ~aug.noisy
    assert torch.equal(aug.train_labels[clean], aug.z[aug.train_idx][clean])
    assert (aug.train_labels[aug.noisy] != aug.z[aug.train_idx][aug.noisy]).all()
    before, after = _label_of(add11), _label_of(aug)
    for (x, y), value in before.items():
        assert after[(x, y)] == value  # original pairs keep label and flag
        if (y, x) not in before:
            assert after[(y, x)] == value  # an added partner gets the same label and flag
    assert set(after) - set(before) == {(y, x) for x, y in before} - set(before)
    assert int(aug.noisy.sum()) > int(add11.noisy.sum())  # some noisy pair had a partner added


def test_meta_counts_and_input_unchanged(add11):
    train_before = add11.train_idx.clone()
    meta_before = dict(add11.meta)
    aug = augment_commutative(add11)
    n_table = aug.z.numel()
    assert aug is not add11
    assert torch.equal(add11.train_idx, train_before) and add11.meta == meta_before
    assert aug.meta["augmented"] == "commutative"
    assert aug.meta["n_train_before"] == train_before.numel()
    assert aug.meta["n_train"] == aug.train_idx.numel()
    assert aug.meta["n_test"] == aug.test_idx.numel() == n_table - aug.meta["n_train"]
    assert aug.meta["n_noisy"] == int(aug.noisy.sum())
    assert aug.meta["effective_train_fraction"] == pytest.approx(aug.meta["n_train"] / n_table)
    assert aug.meta["op"] == "x+y" and aug.meta["p"] == 11


def test_augmenting_twice_adds_nothing(add11):
    once = augment_commutative(add11)
    twice = augment_commutative(once)
    assert torch.equal(once.train_idx, twice.train_idx)
    assert torch.equal(once.train_labels, twice.train_labels)


@pytest.mark.parametrize("op", ["x*y", "x^2+y^2", "x^2+xy+y^2"])
def test_other_commutative_ops_work(op):
    task = build_task("modular", op, p=13, train_fraction=0.4, split_seed=1)
    aug = augment_commutative(task)
    train = _pairs(aug, aug.train_idx)
    assert all((y, x) in train for x, y in train)
    assert torch.equal(aug.train_labels, aug.z[aug.train_idx])


@pytest.mark.parametrize(
    ("kind", "op", "size"),
    [("modular", "x-y", {"p": 11}), ("modular", "x/y", {"p": 11}),
     ("modular", "x^3+xy", {"p": 11}), ("permutation", "x*y", {"n": 3}),
     ("permutation", "x*y", {"n": 4})],
)
def test_non_commutative_ops_raise(kind, op, size):
    task = build_task(kind, op, train_fraction=0.5, **size)
    with pytest.raises(ConfigError, match=r"^task\.augment: op .* is not commutative"):
        augment_commutative(task)


def test_no_test_pair_left_raises():
    task = build_task("modular", "x+y", p=3, train_fraction=0.5)
    lonely = int(torch.nonzero((task.x == 0) & (task.y == 1)))  # (0, 1) only; (1, 0) in train
    train_idx = torch.tensor([i for i in range(9) if i != lonely])
    task = dataclasses.replace(task, train_idx=train_idx, test_idx=torch.tensor([lonely]),
                               train_labels=task.z[train_idx], noisy=torch.zeros(8, dtype=torch.bool))
    with pytest.raises(ConfigError, match=r"^task\.augment: "):
        augment_commutative(task)


def test_expected_fraction_exact_by_enumeration():
    """All C(9, 3) training sets of x+y mod 3: the mean fraction equals the formula exactly."""
    task = build_task("modular", "x+y", p=3, train_fraction=0.3)
    fractions = []
    for rows in itertools.combinations(range(9), 3):
        train_idx = torch.tensor(rows)
        test_idx = torch.tensor([i for i in range(9) if i not in rows])
        t = dataclasses.replace(task, train_idx=train_idx, test_idx=test_idx,
                                train_labels=task.z[train_idx], noisy=torch.zeros(3, dtype=torch.bool))
        fractions.append(augment_commutative(t).meta["effective_train_fraction"])
    mean = sum(fractions) / len(fractions)
    assert mean == pytest.approx(expected_augmented_fraction(9, 3, 3), abs=1e-12)


@pytest.mark.parametrize("f", [0.3, 0.5])
def test_expected_fraction_matches_mean_over_seeds(f):
    p = 97
    runs = [augment_commutative(build_task("modular", "x+y", p=p, train_fraction=f, split_seed=s))
            for s in range(20)]
    mean = sum(r.meta["effective_train_fraction"] for r in runs) / len(runs)
    exact = expected_augmented_fraction(p * p, p, runs[0].meta["n_train_before"])
    approx = 1 - (1 - f) ** 2 - f * (1 - f) / p
    assert mean == pytest.approx(exact, abs=0.01)
    assert exact == pytest.approx(approx, abs=1e-4)
    if f == 0.3:
        assert exact == pytest.approx(0.5078, abs=1e-3)


def test_expected_fraction_rejects_bad_counts():
    with pytest.raises(ValueError):
        expected_augmented_fraction(9, 10, 3)
    with pytest.raises(ValueError):
        expected_augmented_fraction(9, 3, 10)
