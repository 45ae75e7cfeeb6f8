"""Tense inflection: the grammar generator, the two agreement rules, the splits and the measures."""

from __future__ import annotations

import random
import re

import pytest
import torch

from grokscope import RunConfig, TaskConfig, train
from grokscope.config import LogConfig, ModelConfig, OptimConfig, TrainConfig, validate
from grokscope.errors import ConfigError
from grokscope.models import build_model
from grokscope.tasks import task_from_config
from grokscope.tasks.grammar import GrammarOptions
from grokscope.tasks.tense import (
    TENSE_VOCAB,
    linear_present,
    main_verb,
    past_sentence,
    present_sentence,
    tense_parses,
)


def _cfg(**options):
    return validate(RunConfig(task=TaskConfig(kind="tense_inflection",
                                              options={"n_train": 600, "n_test": 60, **options}),
                              model=ModelConfig(arch="transformer", n_layers=1, d_model=32, n_heads=4,
                                                d_mlp=64, norm="pre")))


def _decode(split, r):
    """(input sentence, task word, output words) of row r of a split."""
    words = [TENSE_VOCAB[i] for i in torch.cat([split.inputs[r, :1], split.targets[r]]).tolist()]
    words = words[: words.index("<eos>")]
    t = next(i for i, w in enumerate(words) if w in ("past", "present"))
    return words[:t], words[t], words[t + 1:]


def test_generated_sentences_parse_in_both_tenses_and_broken_ones_do_not():
    rng, o = random.Random(0), GrammarOptions()
    n_differ = 0
    for _ in range(2000):
        words, verbs, main = past_sentence(rng, o)
        assert tense_parses(words, "past") and main_verb(words, "past") == main, " ".join(words)
        present = present_sentence(words, verbs)
        assert main_verb(present, "present") == main, " ".join(present)
        linear = linear_present(words)
        if linear != present:
            n_differ += 1
            assert linear[main] != present[main]  # only the main verb can differ
            assert not tense_parses(linear, "present")  # the linear rule breaks agreement
    assert n_differ > 100
    assert tense_parses("my newt near the yaks giggles .".split(), "present")
    assert not tense_parses("my newt near the yaks giggle .".split(), "present")
    assert not tense_parses("my newt giggled the yak .".split(), "past")  # intransitive with an object
    assert not tense_parses("my newt admired .".split(), "past")  # transitive without one
    assert not tense_parses("my newt giggles .".split(), "past")


def test_the_rules_agree_with_the_subject_or_the_nearest_noun():
    s = "my newt who admired the yaks giggled .".split()
    verbs = [(3, "sg"), (6, "sg")]
    assert present_sentence(s, verbs) == "my newt who admires the yaks giggles .".split()
    assert linear_present(s) == "my newt who admires the yaks giggle .".split()
    s = "the yaks near her zebra confused our newt .".split()
    assert linear_present(s) == "the yaks near her zebra confuses our newt .".split()
    assert present_sentence(s, [(5, "pl")]) == "the yaks near her zebra confuse our newt .".split()


def test_splits_follow_the_hierarchical_rule_train_never_disambiguates_and_test_gen_always_does():
    t = task_from_config(_cfg())
    assert t.generalization_split == "test_gen" and t.meta["kind"] == "tense_inflection"
    for name, split in t.splits.items():
        for r in range(len(split)):
            past, task, out = _decode(split, r)
            assert tense_parses(past, "past")
            if task == "past":
                assert name == "train" and out == past
                continue
            main = main_verb(out, "present")
            assert main is not None and main == main_verb(past, "past")
            if name == "test_gen":
                assert linear_present(past)[main] != out[main]
            else:
                assert linear_present(past) == out
    m = t.measures(build_model(_cfg().model, t), torch.device("cpu"))
    assert set(m) == {"test_id_verb_acc", "test_gen_verb_acc", "test_gen_verb_linear_acc",
                      "test_id_seq_acc", "test_gen_seq_acc", "test_gen_linear_acc"}
    assert m["test_gen_verb_acc"] + m["test_gen_verb_linear_acc"] <= 1


class _Oracle(torch.nn.Module):
    """Answers every known input row with given target rows (one-hot logits); unknown rows get zeros."""

    def __init__(self, pairs, vocab_size):
        super().__init__()
        self.table = {tuple(x.tolist()): y for inputs, targets in pairs for x, y in zip(inputs, targets)}
        self.vocab_size = vocab_size

    def forward(self, x):
        out = torch.zeros(*x.shape, self.vocab_size)
        for r, row in enumerate(x):
            y = self.table.get(tuple(row.tolist()))
            if y is not None:
                out[r].scatter_(-1, y.unsqueeze(-1), 1.0)
        return out


@pytest.mark.parametrize("kind,key", [("tense_inflection", "verb"), ("question_formation", "first")])
def test_key_word_measures_tell_which_rule_a_model_follows(kind, key):
    options = {"n_train": 400, "n_test": 40}
    t = task_from_config(validate(RunConfig(task=TaskConfig(kind=kind, options=options))))
    ident, gen, lin = t.splits["test_id"], t.splits["test_gen"], t.linear
    follows_hierarchy = _Oracle([(ident.inputs, ident.targets), (gen.inputs, gen.targets)], t.vocab_size)
    m = t.measures(follows_hierarchy, torch.device("cpu"))
    assert m[f"test_id_{key}_acc"] == m[f"test_gen_{key}_acc"] == 1.0
    assert m["test_id_seq_acc"] == m["test_gen_seq_acc"] == 1.0
    assert m[f"test_gen_{key}_linear_acc"] == m["test_gen_linear_acc"] == 0.0
    # the linear rule: on test_gen's inputs (teacher prefix up to the key word is the same) and on its own
    pairs = [(ident.inputs, ident.targets), (gen.inputs, lin.targets), (lin.inputs, lin.targets)]
    follows_linear = _Oracle(pairs, t.vocab_size)
    m = t.measures(follows_linear, torch.device("cpu"))
    assert m[f"test_id_{key}_acc"] == 1.0 and m[f"test_gen_{key}_acc"] == m["test_gen_seq_acc"] == 0.0
    assert m[f"test_gen_{key}_linear_acc"] == m["test_gen_linear_acc"] == 1.0


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_transformer_and_lstm_train_on_tense_inflection_through_the_engine(arch, tmp_path):
    model = ModelConfig(arch=arch, n_layers=1, d_model=32, n_heads=4, d_mlp=64, norm="pre")
    cfg = RunConfig(task=_cfg().task, model=model, optim=OptimConfig(lr=3e-3, weight_decay=0.1),
                    train=TrainConfig(steps=40, batch_size=64, eval_every=20),
                    log=LogConfig(figure=False, report=False, progress=False))
    r = train(cfg, tmp_path / arch)
    assert r.summary["generalization_split"] == "test_gen"
    assert r.metrics[-1]["train_loss"] < r.metrics[0]["train_loss"]
    assert "test_gen_verb_acc" in r.metrics[-1]


def test_bad_tense_options_are_one_line():
    with pytest.raises(ConfigError, match="^" + re.escape("task.options.loss_on: must be 'output' or "
                                                          "'sequence', got 'all'") + "$"):
        _cfg(loss_on="all")
    with pytest.raises(ConfigError, match="^task.options.rc_prob: must give 0 < rc_prob"):
        _cfg(rc_prob=0.0, pp_prob=0.0)
