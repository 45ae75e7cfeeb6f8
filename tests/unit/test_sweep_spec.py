"""Sweep specs: axis syntax, expansion into RunConfigs, names, spec files, one-line errors."""

from __future__ import annotations

import builtins
import json

import pytest

from grokscope.config import to_dict
from grokscope.errors import ConfigError
from grokscope.presets import get_preset
from grokscope.sweep.spec import (
    SweepSpec,
    load_spec,
    merge,
    parse_axis,
    parse_seeds,
    spec_from_dict,
    value_text,
)


def test_list_linear_and_log_ranges():
    assert parse_axis("optim.weight_decay", "0,0.1,0.3,1,3").values == ("0", "0.1", "0.3", "1", "3")
    frac = parse_axis("task.train_fraction", "0.2:0.8:7")
    assert frac.values == ("0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8")  # no 0.30000000000000004
    assert frac.typed == pytest.approx([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert parse_axis("optim.lr", "log:1e-3:1:4").values == ("0.001", "0.01", "0.1", "1")
    assert parse_axis("optim.lr", "LOG:1e-4:1e-2:3").typed == pytest.approx([1e-4, 1e-3, 1e-2])
    assert parse_axis("task.train_fraction", "0.3:0.3:1").values == ("0.3",)


def test_integer_fields_round_and_typed_values():
    assert parse_axis("train.steps", "1000:5000:5").typed == [1000, 2000, 3000, 4000, 5000]
    assert parse_axis("train.batch_size", "log:32:512:5").typed == [32, 64, 128, 256, 512]
    assert parse_axis("train.batch_size", "none,64").typed == [None, 64]
    assert parse_axis("optim.grad_clip", "none,1").typed == [None, 1.0]
    assert parse_axis("task.op", "x+y,x/y").typed == ["x+y", "x/y"]
    assert parse_axis("optim.orthograd", "false,true").typed == [False, True]


def test_json_lists_and_scalars_are_accepted():
    assert parse_axis("optim.weight_decay", [0, 0.5, 1]).values == ("0", "0.5", "1")
    assert parse_axis("optim.betas", [[0.9, 0.98], [0.9, 0.999]]).typed == [(0.9, 0.98), (0.9, 0.999)]
    assert parse_axis("optim.lr", 0.01).values == ("0.01",)


BAD_AXES = [
    ("optim.lrr", "1,2", "optim.lrr: unknown field (did you mean 'optim.lr'?)"),
    ("seed", "0,1", "seed: cannot be swept as an axis; use seeds"),
    ("name", "a,b", "name: cannot be swept"),
    ("optim.lr", "1e-3,0.001", "optim.lr: axis value 0.001 is given twice"),
    ("optim.lr", "a,b", "optim.lr: must be a number, got 'a'"),
    ("optim.lr", "0.1,,0.2", "optim.lr: empty axis value"),
    ("task.op", "1:2:3", "task.op: a range needs a numeric field"),
    ("task.kind", "modular,groups", "task.kind: must be one of 'modular', 'permutation'"),
    ("optim.lr", "log:0:1:3", "optim.lr: a log range needs START > 0 and STOP > 0"),
    ("optim.lr", "log:1e-3:1", "optim.lr: range must be START:STOP:N or log:START:STOP:N"),
    ("optim.lr", "0.1:0.2:2.5", "optim.lr: range must be START:STOP:N"),
    ("optim.lr", "0.1:0.2:x", "optim.lr: range must be START:STOP:N"),
    ("optim.lr", "0.1:0.2", "optim.lr: range must be START:STOP:N"),
    ("optim.lr", "0.1:0.2:0", "optim.lr: range must be START:STOP:N"),
    ("train.steps", "1:3:10", "train.steps: range '1:3:10' repeats integers after rounding"),
    ("optim.lr", {"a": 1}, "optim.lr: axis values must be a list"),
]


@pytest.mark.parametrize("field,values,message", BAD_AXES, ids=[f"{f}={v}" for f, v, _ in BAD_AXES])
def test_bad_axes_raise_one_line_naming_the_field(field, values, message):
    with pytest.raises(ConfigError) as e:
        parse_axis(field, values)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(field.split(".")[0])


def test_seeds():
    assert parse_seeds(3) == (0, 1, 2)
    assert parse_seeds("2") == (0, 1)
    assert parse_seeds("0,4,7") == (0, 4, 7)
    assert parse_seeds("5,") == (5,)
    assert parse_seeds([3, 1]) == (3, 1)
    for bad in (0, "0", "a", [], [1, 1], [-1], True, "1,x", 1.5):
        with pytest.raises(ConfigError, match="^seeds: "):
            parse_seeds(bad)


def _spec(**kw) -> SweepSpec:
    axes = (parse_axis("optim.weight_decay", "0,1"), parse_axis("task.train_fraction", "0.3:0.5:3"))
    return SweepSpec(axes=axes, seeds=(0, 1), **kw)


def test_expand_product_order_names_and_configs():
    runs = _spec(overrides=(("train.steps", "300"),)).expand()
    assert len(runs) == 2 * 3 * 2
    assert [r.name for r in runs[:3]] == ["weight_decay-0_train_fraction-0.3_seed-0",
                                          "weight_decay-0_train_fraction-0.3_seed-1",
                                          "weight_decay-0_train_fraction-0.4_seed-0"]
    r = runs[-1]
    assert r.name == "weight_decay-1_train_fraction-0.5_seed-1"
    assert r.values == {"optim.weight_decay": 1.0, "task.train_fraction": 0.5} and r.seed == 1
    demo = get_preset("demo")
    assert r.config.optim.weight_decay == 1.0 and r.config.task.train_fraction == 0.5 and r.config.seed == 1
    assert r.config.train.steps == 300 and r.config.name == f"demo-{r.name}"
    assert r.config.model == demo.model and r.config.optim.lr == demo.optim.lr
    assert len({x.name for x in runs}) == len(runs)
    assert [x.name for x in _spec(overrides=(("train.steps", "300"),)).expand()] == [x.name for x in runs]


def test_names_escape_unsafe_values_and_disambiguate_leaves():
    spec = SweepSpec(axes=(parse_axis("task.op", "x/y,x*y"), parse_axis("model.dropout", "0,0.1"),
                           parse_axis("train.dropout_final", "0")))
    names = [r.name for r in spec.expand()]
    assert names[0] == "op-x%2Fy_dropout-0_dropout_final-0_seed-0"
    assert all("/" not in n and "*" not in n for n in names)
    spec = SweepSpec(axes=(parse_axis("optim.grokfast_lamb", "1"), parse_axis("optim.lr", "1e-3")))
    assert spec.expand()[0].name == "grokfast_lamb-1_lr-0.001_seed-0"


def test_default_seed_is_the_base_configs():
    runs = SweepSpec(overrides=(("seed", "5"),), axes=(parse_axis("optim.lr", "1e-3"),)).expand()
    assert [r.seed for r in runs] == [5] and runs[0].name == "lr-0.001_seed-5"


def test_expand_validates_every_run():
    with pytest.raises(ConfigError, match=r"^optim.lr: must be > 0, got -1.0 \(in sweep run lr--1_seed-0\)$"):
        SweepSpec(axes=(parse_axis("optim.lr", "-1,1e-3"),)).expand()
    with pytest.raises(ConfigError, match="^task.p: must be a prime"):
        SweepSpec(overrides=(("task.op", "x/y"),), axes=(parse_axis("task.p", "31,33"),)).expand()
    with pytest.raises(ConfigError, match="^optim.lr: set both as an axis and as a base override"):
        SweepSpec(overrides=(("optim.lr", "1e-3"),), axes=(parse_axis("optim.lr", "1e-2"),)).expand()
    with pytest.raises(ConfigError, match="^preset: unknown preset 'nope'"):
        SweepSpec(preset="nope").expand()
    with pytest.raises(ConfigError, match="^train.stepz: unknown field"):
        SweepSpec(overrides=(("train.stepz", "3"),)).expand()


def test_to_dict_round_trip_and_json_file(tmp_path):
    spec = _spec(overrides=(("train.steps", "300"), ("optim.betas", "0.9,0.99")))
    d = spec.to_dict()
    assert d["axes"] == {"optim.weight_decay": [0.0, 1.0], "task.train_fraction": [0.3, 0.4, 0.5]}
    assert spec_from_dict(json.loads(json.dumps(d))) == spec
    f = tmp_path / "spec.json"
    f.write_text(json.dumps({"preset": "demo", "overrides": {"train.steps": 300, "optim.betas": [0.9, 0.99]},
                             "axes": {"optim.weight_decay": [0, 1], "task.train_fraction": "0.3:0.5:3"},
                             "seeds": 2}))
    assert load_spec(f) == spec


def test_config_file_base_relative_to_the_spec(tmp_path):
    from dataclasses import replace

    from grokscope.config import save_json

    base = replace(get_preset("demo"), name="mine", seed=3)
    (tmp_path / "base.json").write_text(save_json(base))
    (tmp_path / "spec.json").write_text(json.dumps({"config": "base.json", "axes": {"optim.lr": [0.01]}}))
    spec = load_spec(tmp_path / "spec.json")
    runs = spec.expand()
    assert to_dict(spec.base_config()) == to_dict(base)
    assert runs[0].config.seed == 3 and runs[0].config.name == "mine-lr-0.01_seed-3"


def test_yaml_spec(tmp_path):
    pytest.importorskip("yaml")
    f = tmp_path / "spec.yaml"
    f.write_text("preset: demo\naxes:\n  optim.weight_decay: [0, 1]\n  task.train_fraction: 0.3:0.5:3\n"
                 "seeds: [0, 1]\noverrides:\n  train.steps: 300\n  optim.betas: [0.9, 0.99]\n")
    assert load_spec(f) == _spec(overrides=(("train.steps", "300"), ("optim.betas", "0.9,0.99")))


def test_yaml_without_pyyaml_is_a_clear_error(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError("no yaml")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    f = tmp_path / "spec.yml"
    f.write_text("preset: demo\n")
    with pytest.raises(ConfigError, match=r"^spec: reading YAML needs PyYAML \(pip install grokscope"):
        load_spec(f)


BAD_FILES = [
    ("[1, 2]", "spec: must be an object"),
    ('{"axis": {}}', "spec: unknown key 'axis'; allowed: preset, config, overrides, axes, seeds"),
    ('{"preset": "demo", "config": "c.json"}', "spec: give either preset or config, not both"),
    ('{"axes": [1]}', "axes: must be an object of dotted fields"),
    ('{"overrides": {"optim.lrr": 1}}', "optim.lrr: unknown field"),
    ('{"seeds": -2}', "seeds: must be a count"),
    ('{"axes": {"optim.lr": "x"}}', "optim.lr: must be a number, got 'x'"),
    ("{not json", "spec: "),
]


@pytest.mark.parametrize("text,message", BAD_FILES, ids=[t for t, _ in BAD_FILES])
def test_bad_spec_files(tmp_path, text, message):
    f = tmp_path / "spec.json"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_spec(f)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_missing_spec_and_config_files(tmp_path):
    with pytest.raises(ConfigError, match="^spec: .* is not a file"):
        load_spec(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="^config: .* is not a file"):
        SweepSpec(config=str(tmp_path / "nope.json")).expand()


def test_merge_command_line_over_file():
    spec = _spec(overrides=(("train.steps", "300"),))
    merged = merge(spec, preset="demo", overrides={"train.steps": "200", "optim.lr": "0.01"},
                   axes=[parse_axis("task.train_fraction", "0.6"), parse_axis("model.init_scale", "1,2")],
                   seeds=(7,))
    assert dict(merged.overrides) == {"train.steps": "200", "optim.lr": "0.01"}
    assert [a.field for a in merged.axes] == ["optim.weight_decay", "task.train_fraction", "model.init_scale"]
    assert merged.axes[1].values == ("0.6",) and merged.seeds == (7,)
    assert merge(spec, config="base.json").preset is None


def test_value_text():
    assert [value_text(v) for v in (None, True, 3, 0.1 + 0.2, 1e-5, (0.9, 0.98), "x+y")] == [
        "none", "true", "3", "0.3", "1e-05", "0.9,0.98", "x+y"]
