from __future__ import annotations

import json

import pytest

from grokscope import ConfigError, RunConfig, get_preset, list_presets
from grokscope.config import apply_overrides, field_names, from_dict, load_json, save_json, to_dict, validate


@pytest.mark.parametrize("name", list(list_presets()))
def test_presets_validate_and_round_trip(name):
    cfg = get_preset(name)
    validate(cfg)
    back = load_json(save_json(cfg))
    assert to_dict(back) == to_dict(cfg)
    assert back.optim.weight_decay_mode == cfg.optim.decay_mode != "auto"  # saved resolved
    assert load_json(save_json(back)) == back


def test_presets_have_docstrings_citing_expectations():
    docs = list_presets()
    assert {"demo", "power2022", "nanda2023"} <= set(docs)
    for name, doc in docs.items():
        assert len(doc) > 80, name


def test_power2022_matches_paper():
    c = get_preset("power2022")
    assert (c.task.op, c.task.p, c.task.train_fraction) == ("x/y", 97, 0.5)
    assert (c.model.n_layers, c.model.d_model, c.model.n_heads) == (2, 128, 4)
    o = c.optim
    assert (o.name, o.lr, o.weight_decay, o.betas) == ("adamw", 1e-3, 1.0, (0.9, 0.98))
    assert (c.optim.warmup_steps, c.train.batch_size, c.train.steps) == (10, 512, 100_000)


def test_nanda2023_matches_paper():
    c = get_preset("nanda2023")
    assert (c.task.op, c.task.p, c.task.train_fraction) == ("x+y", 113, 0.3)
    assert (c.model.n_layers, c.model.d_model, c.model.n_heads, c.model.d_mlp) == (1, 128, 4, 512)
    assert c.model.norm == "none" and c.model.activation == "relu" and c.train.batch_size is None


def test_overrides_are_typed():
    cfg = apply_overrides(RunConfig(), {"optim.lr": "3e-3", "train.steps": "1e3", "optim.betas": "0.8,0.99",
                                        "train.batch_size": "none", "log.figure": "false",
                                        "optim.grad_clip": "1.5", "task.split_seed": "7"})
    assert cfg.optim.lr == 3e-3 and cfg.train.steps == 1000 and cfg.optim.betas == (0.8, 0.99)
    assert cfg.train.batch_size is None and cfg.log.figure is False
    assert cfg.optim.grad_clip == 1.5 and cfg.task.split_seed == 7


@pytest.mark.parametrize("key,value,match", [
    ("optim.lrr", "1", r"optim.lrr: unknown field \(did you mean 'optim.lr'\?\)"),
    ("train.steps", "abc", "train.steps: must be an integer"),
    ("train.steps", "1.5", "train.steps: must be an integer"),
    ("optim.lr", "nan", "optim.lr: must be a finite number"),
    ("model.norm", "batch", "model.norm: must be one of 'none', 'pre', 'post'"),
    ("log.figure", "maybe", "log.figure: must be true or false"),
    ("optim.betas", "0.9", "optim.betas: must be 2 numbers"),
])
def test_bad_overrides(key, value, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(RunConfig(), {key: value})


@pytest.mark.parametrize("key,value,match", [
    ("optim.lr", "-1", "optim.lr: must be > 0"),
    ("optim.weight_decay", "-0.1", "optim.weight_decay: must be >= 0"),
    ("model.n_heads", "5", "model.n_heads: must divide model.d_model=128"),
    ("model.dropout", "1", r"model.dropout: must be in \[0, 1\)"),
    ("train.batch_size", "0", "train.batch_size: must be >= 1"),
    ("train.steps", "0", "train.steps: must be an integer in"),
    ("task.train_fraction", "0", r"task.train_fraction: must be in \(0, 1\)"),
    ("seed", "-3", r"seed: must be an integer in 0\.\.9223372036854775807 \(2\*\*63 - 1\), got -3"),
    ("seed", str(2**70), r"seed: must be an integer in 0\.\.9223372036854775807"),
    ("task.split_seed", str(2**64), r"task\.split_seed: must be an integer in 0\.\.9223372036854775807"),
])
def test_validation_names_the_field(key, value, match):
    with pytest.raises(ConfigError, match=match):
        validate(apply_overrides(RunConfig(), {key: value}))


def test_from_dict_rejects_unknown_and_wrong_types():
    d = to_dict(RunConfig())
    d["model"]["widht"] = 3
    with pytest.raises(ConfigError, match="model.widht: unknown field"):
        from_dict(d)
    d = json.loads(json.dumps(to_dict(RunConfig())))
    d["train"]["steps"] = "ten"
    with pytest.raises(ConfigError, match="train.steps: must be an integer"):
        validate(from_dict(d))


def test_field_names_cover_every_section():
    names = field_names()
    assert "task.op" in names and "optim.betas" in names and "seed" in names
    assert len(names) == len(set(names)) > 30
