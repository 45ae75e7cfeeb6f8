"""Question formation: the grammar generator, the two rules, the splits and the measures."""

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
from grokscope.tasks.grammar import (
    ALL_AUX,
    VOCAB,
    GrammarOptions,
    declarative,
    hierarchical_question,
    linear_question,
    main_auxiliary,
    parses,
)
from grokscope.training.checkpoint import load_checkpoint


def _cfg(**options):
    return validate(RunConfig(task=TaskConfig(kind="question_formation",
                                              options={"n_train": 600, "n_test": 60, **options}),
                              model=ModelConfig(arch="transformer", n_layers=1, d_model=32, n_heads=4,
                                                d_mlp=64, norm="pre")))


def _decode(split, r):
    """(declarative, task word, output words) of row r of a split."""
    words = [VOCAB[i] for i in torch.cat([split.inputs[r, :1], split.targets[r]]).tolist()]
    words = words[: words.index("<eos>")]
    t = next(i for i, w in enumerate(words) if w in ("decl", "quest"))
    return words[:t], words[t], words[t + 1:]


def test_every_generated_declarative_parses_and_broken_ones_do_not():
    rng, o = random.Random(0), GrammarOptions()
    for _ in range(2000):
        words, main = declarative(rng, o)
        assert parses(words), " ".join(words)
        assert main_auxiliary(words) == main and words[main] in ALL_AUX
    assert parses("the newt who can giggle does swim .".split())
    assert not parses("the newt who can giggle do swim .".split())  # agreement: newt is singular
    assert not parses("the newts does swim .".split())
    assert not parses("the newt swim does .".split())
    assert not parses("newt does swim .".split())


def test_the_rules_differ_exactly_when_the_subject_holds_an_auxiliary():
    s = "the newt who can giggle does swim .".split()
    assert hierarchical_question(s, 5) == "does the newt who can giggle swim ?".split()
    assert linear_question(s) == "can the newt who giggle does swim ?".split()
    s = "the newt does amuse the yak who can giggle .".split()
    q = "does the newt amuse the yak who can giggle ?".split()
    assert hierarchical_question(s, 2) == linear_question(s) == q


def test_splits_follow_the_hierarchical_rule_train_never_disambiguates_and_test_gen_always_does():
    t = task_from_config(_cfg())
    assert t.generalization_split == "test_gen" and t.output == "tokens"
    for name, split in t.splits.items():
        for r in range(len(split)):
            decl, task, out = _decode(split, r)
            assert parses(decl)
            if task == "decl":
                assert name == "train" and out == decl
                continue
            assert out[-1] == "?" and out[0] in ALL_AUX
            assert out == hierarchical_question(decl, main_auxiliary(decl))  # the parse's main auxiliary
            if name == "test_gen":
                assert linear_question(decl)[0] != out[0]  # the rules move different auxiliary words
            else:
                assert linear_question(decl) == out  # no disambiguating question in train or test_id
    train_q = {tuple(_decode(t.splits["train"], r)[0]) for r in range(len(t.splits["train"]))
               if _decode(t.splits["train"], r)[1] == "quest"}
    test_id = {tuple(_decode(t.splits["test_id"], r)[0]) for r in range(len(t.splits["test_id"]))}
    assert not train_q & test_id


def test_measures_first_word_and_linear_rule_on_an_untrained_model():
    t = task_from_config(_cfg())
    torch.manual_seed(0)
    model = build_model(_cfg().model, t)
    m = t.measures(model, torch.device("cpu"))
    assert set(m) == {"test_id_first_acc", "test_gen_first_acc", "test_gen_first_linear_acc",
                      "test_id_seq_acc", "test_gen_seq_acc", "test_gen_linear_acc"}
    assert all(0 <= v <= 1 for v in m.values()) and m["test_gen_linear_acc"] == 0.0
    assert m["test_gen_first_acc"] + m["test_gen_first_linear_acc"] <= 1  # the two first words differ


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_transformer_and_lstm_train_on_question_formation_through_the_engine(arch, tmp_path):
    cfg = _cfg()
    model = ModelConfig(arch=arch, n_layers=1, d_model=32, n_heads=4, d_mlp=64, norm="pre")
    cfg = RunConfig(task=cfg.task, model=model, optim=OptimConfig(lr=3e-3, weight_decay=0.1),
                    train=TrainConfig(steps=40, batch_size=64, eval_every=20),
                    log=LogConfig(figure=False, report=False, progress=False))
    r = train(cfg, tmp_path / arch)
    assert r.summary["generalization_split"] == "test_gen"
    assert r.metrics[-1]["train_loss"] < r.metrics[0]["train_loss"]
    assert "test_gen_first_acc" in r.metrics[-1]


def test_bad_grammar_options_are_one_line():
    message = "task.options.max_depth: must be an integer in 1..4, got 0"
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        _cfg(max_depth=0)


def test_loss_on_sequence_trains_a_language_model_on_the_whole_training_sequence(tmp_path):
    """loss_on='sequence' puts a loss mask on every prediction of train (not of the test splits), and
    the trained model then predicts the declaratives' own words better than one trained on outputs."""
    t = task_from_config(_cfg(loss_on="sequence"))
    tr = t.splits["train"]
    assert torch.equal(tr.loss_mask, tr.targets != VOCAB.index("<pad>"))  # every word and <eos>
    assert (tr.loss_mask >= tr.mask).all() and tr.loss_mask.sum() > tr.mask.sum()
    assert t.splits["test_gen"].loss_mask is None
    assert task_from_config(_cfg()).splits["train"].loss_mask is None
    losses = {}
    for loss_on in ("output", "sequence"):
        cfg = _cfg(loss_on=loss_on)
        cfg = RunConfig(task=cfg.task, model=cfg.model, optim=OptimConfig(lr=3e-3),
                        train=TrainConfig(steps=60, batch_size=64, eval_every=60),
                        log=LogConfig(figure=False, report=False, progress=False))
        r = train(cfg, tmp_path / loss_on)
        model = build_model(cfg.model, t)
        model.load_state_dict(load_checkpoint(r.path / "checkpoints" / "step_00000060.pt")["model"])
        with torch.no_grad():
            per_token = torch.nn.functional.cross_entropy(model(tr.inputs).transpose(1, 2), tr.targets,
                                                          reduction="none")
        prompt = tr.loss_mask & ~tr.mask  # the declarative's own words
        losses[loss_on] = float(per_token[prompt].mean())
    assert losses["sequence"] < losses["output"] - 0.5


def test_score_key_makes_the_test_splits_score_the_first_word_and_sequence_the_whole_output():
    key, whole = task_from_config(_cfg()), task_from_config(_cfg(score="sequence"))
    for name in ("test_id", "test_gen"):
        k, w = key.splits[name], whole.splits[name]
        assert torch.equal(k.targets, w.targets) and torch.equal(w.mask, key.full[name].mask)
        assert (k.mask.sum(1) == 1).all()  # one scored position: the first output word
        assert torch.equal(k.mask.nonzero()[:, 1], key.key_pos[name])
        assert (k.mask <= w.mask).all()
    assert torch.equal(key.splits["train"].mask, whole.splits["train"].mask)  # train scores the sequence
    with pytest.raises(ConfigError, match="^task.options.score: must be 'key' or 'sequence', got 'all'$"):
        _cfg(score="all")


def test_training_questions_rule_out_moving_the_last_auxiliary():
    """Only 'move the first' and 'move the main auxiliary' fit the training questions: some of them
    hold a relative clause on the object, whose auxiliary is the last one (McCoy et al. 2020)."""
    t = task_from_config(_cfg())
    tr = t.splits["train"]
    refuted = 0
    for r in range(len(tr)):
        decl, task, out = _decode(tr, r)
        if task == "quest":
            last = max(i for i, w in enumerate(decl) if w in ALL_AUX)
            refuted += hierarchical_question(decl, last) != out
    assert refuted >= 20
