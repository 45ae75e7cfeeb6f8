"""The command line is one tyro schema: help of every command, bad input of every command as one
line with exit code 2, and how run-config tokens become overrides (no training here)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from grokscope.cli import main
from grokscope.cli.parsing import parse
from grokscope.cli.schema import COMMANDS
from grokscope.cli.train import run_config
from tests.conftest import option_only_task_kinds


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------------------- help


def test_top_level_help_lists_every_command(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and out.startswith("usage: grokscope")
    for name in ("train", "resume", "show", "report", "compare", "analyze", "sweep", "reproduce", "predict",
                 "presets"):
        assert re.search(rf"\b{name}\b", out), name
    assert list(COMMANDS) == ["train", "resume", "show", "report", "compare", "analyze", "sweep", "reproduce",
                             "predict", "presets"]


def test_no_command_prints_usage_and_exits_2(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and "usage: grokscope" in err and "train" in err and "Traceback" not in err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(capsys, name):
    code, out, err = run_cli(capsys, name, "--help")
    assert code == 0 and out.startswith(f"usage: grokscope {name}"), err


def _lr_help(out: str) -> str:
    """The help block of --optim.lr (its line up to the next option)."""
    block = out[out.index("--optim.lr "):]
    return block[:block.index("--optim.betas")]


def test_train_help_shows_docstrings_and_the_presets_defaults(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0 and "Peak learning rate" in _lr_help(out) and "0.003" in _lr_help(out)  # demo
    assert "--task.train_fraction" in out and "--log.figure" in out and "--init_from" in out
    code, out, _ = run_cli(capsys, "train", "--preset", "power2022", "--help")
    assert code == 0 and "0.001" in _lr_help(out) and "(default: x/y)" in out
    code, out, _ = run_cli(capsys, "sweep", "--preset", "nanda2023", "--help")
    assert code == 0 and "--axis" in out and "(default: 113)" in out


def test_train_help_with_a_config_json_shows_its_values(tmp_path, capsys):
    from grokscope.config import save_json
    from grokscope.presets import get_preset

    cfg = tmp_path / "c.json"
    cfg.write_text(save_json(get_preset("nanda2023")))
    code, out, _ = run_cli(capsys, "train", "--config", str(cfg), "--help")
    assert code == 0 and "(default: 113)" in out


# ---------------------------------------------------------------------------------- bad input


BAD = [
    ([], "trian", "unknown command 'trian'; choose one of train, resume"),
    ([], "--bogus", "unknown option --bogus"),
    (["train"], "--optim.lr", "optim.lr: missing value after --optim.lr"),
    (["train"], "--optim.betas", "optim.betas: missing value"),
    (["train"], "--log.figure maybe", "log.figure: must be true or false, got 'maybe'"),
    (["train"], "--task.options {}", "task.options: give plug-in task options one by one"),
    (["train"], "--task.options.k", "task.options.k: missing value after --task.options.k"),
    (["train"], "--task.options.k 3", "task.options.k: task kind 'modular' has no options"),
    (["train"], "--preset demo --config c.json", "preset: give either --preset NAME or --config JSON"),
    (["train"], "--config nope.json", "config: 'nope.json' is not a file"),
    (["train"], "--outt x", "outt: unknown field (did you mean 'out'?)"),
    (["train"], "--preset", "preset: missing value after --preset"),
    (["train"], "--log.no-figurex", "log.no_figurex: unknown field"),
    (["resume"], "", "resume: missing RUN"),
    (["resume"], "a b", "resume: unexpected argument 'b'"),
    (["resume"], "a --steps 0", "steps: must be an integer >= 1, got '0'"),
    (["resume"], "a --bogus", "resume: unknown option --bogus; allowed: --steps, --quiet"),
    (["show"], "", "show: missing RUN|SWEEP"),
    (["show"], ".", "run: '.' is not a run directory (no config.json)"),
    (["show"], "a --gap many", "gap: must be an integer >= 0, got 'many'"),
    (["show"], "a --x task.p", "show: unknown option --x"),
    (["report"], "a --x task.p", "x: only for a sweep directory"),
    (["report"], ".", "is not a run directory"),
    (["compare"], "a", "compare: give two or more run directories"),
    (["compare"], "a b --metric zz", "metric: must be one of train_acc, test_acc"),
    (["compare"], "a b --bogus 1", "compare: unknown option --bogus"),
    (["compare"], "a b", "run: 'a' is not a run directory"),
    (["analyze"], "", "analyze: missing RUN"),
    (["analyze"], "a --max-checkpoints 1", "max-checkpoints: must be an integer >= 2, got '1'"),
    (["analyze"], "a --rqi_every x", "rqi-every: must be an integer >= 1, got 'x'"),
    (["analyze"], "a --bogus 3", "analyze: unknown option --bogus"),
    (["sweep"], "--executor dask", "executor: must be one of local, ray, slurm, got 'dask'"),
    (["sweep"], "--pack", "pack: missing value after --pack"),
    (["sweep"], "--vectorize 3", "sweep: unexpected argument '3'"),
    (["sweep"], "--out x --axis optim.lr=1 --task.options.k 3",
     "task.options.k: task kind 'modular' has no options"),
    (["sweep"], "--out x --axis optim.lr=1 --max-retries -1", "max_retries: must be an integer >= 0"),
    (["presets"], "foo", "presets: takes no arguments, got 'foo'"),
]


@pytest.mark.parametrize("command,args,message", BAD, ids=[" ".join([*c, a]) for c, a, _ in BAD])
def test_bad_input_of_every_command(tmp_path, monkeypatch, capsys, command, args, message):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_cli(capsys, *command, *args.split())
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("grokscope: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------- tokens -> overrides


def test_spellings_become_text_overrides():
    p = parse(["train", "--optim.lr=3e-3", "--optim.betas", "0.9", "0.99", "--optim.grad-clip", "None",
               "--task.train-fraction", "0.3", "--log.no-figure", "--log.report", "--model.bias", "false",
               "--seed", "4", "--init-from", "somewhere", "--quiet"])
    assert p.name == "train" and p.command.quiet and p.command.init_from == "somewhere"
    assert p.overrides == {"optim.lr": "3e-3", "optim.betas": "0.9,0.99", "optim.grad_clip": "None",
                           "task.train_fraction": "0.3", "log.report": "true", "model.bias": "false",
                           "seed": "4", "log.figure": "false"}
    cfg = run_config(parse(["train", "--optim.betas", "0.9,0.95", "--optim.grad_clip", "1",
                            "--log.no-figure", "--preset", "power2022"]))
    assert cfg.optim.betas == (0.9, 0.95) and cfg.optim.grad_clip == 1.0 and cfg.log.figure is False
    assert cfg.task.op == "x/y" and cfg.name == "power2022"  # the preset's values under the overrides


def test_a_boolean_given_both_ways_takes_the_later_spelling():
    assert parse(["train", "--log.no-report", "--log.report", "true"]).overrides["log.report"] == "true"
    assert parse(["train", "--log.report", "true", "--log.no-report"]).overrides["log.report"] == "false"
    assert parse(["train", "--log.report", "--log.no-report"]).overrides["log.report"] == "false"


def test_sweep_options_and_steps_alias():
    from grokscope.cli.sweep import sweep_spec

    p = parse(["sweep", "--axis", "optim.lr=1e-3,1e-2", "--axis", "optim.weight_decay=0,1", "--seeds", "2",
               "--steps", "50", "--slurm", "mem_gb=4", "--no-vectorize", "--task.p", "23", "--out", "sw"])
    c = p.command
    assert c.axis == ("optim.lr=1e-3,1e-2", "optim.weight_decay=0,1") and c.slurm == ("mem_gb=4",)
    assert c.vectorize is False and c.seeds == "2" and c.out == "sw"
    spec = sweep_spec(p)
    assert dict(spec.overrides) == {"task.p": "23", "train.steps": "50"} and spec.seeds == (0, 1)
    assert len(spec.expand()) == 8


# ----------------------------------------------------------------------- plug-in task options


@dataclass(frozen=True)
class ToyOptions:
    k: int = 2
    """Size."""
    noise: float = 0.0
    """Noise."""


@pytest.fixture
def toy_kind():
    with option_only_task_kinds(clitoy=ToyOptions) as (name,):
        yield name


def test_plugin_task_options_parse_through_apply_overrides(toy_kind):
    cfg = run_config(parse(["train", "--task.kind", toy_kind, "--task.options.k", "3",
                            "--task.options.noise=0.25"]))
    assert cfg.task.kind == toy_kind and cfg.task.options == {"k": 3, "noise": 0.25}
    from grokscope.cli.sweep import sweep_spec

    p = parse(["sweep", "--task.kind", toy_kind, "--task.options.k", "5", "--seeds", "2", "--out", "sw"])
    assert p.overrides == {"task.kind": toy_kind, "task.options.k": "5"}
    runs = sweep_spec(p).expand()
    assert [r.config.task.options for r in runs] == [{"k": 5}, {"k": 5}]


def test_plugin_task_option_errors_name_the_option(toy_kind, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train", "--task.kind", toy_kind, "--task.options.kk", "3")
    assert code == 2 and "task.options.kk: unknown option of task kind 'clitoy' (did you mean 'k'?)" in err
    code, _, err = run_cli(capsys, "train", "--task.kind", toy_kind, "--task.options.k", "many")
    assert code == 2 and "task.options.k: must be an integer, got 'many'" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ show reads files only


def test_show_of_a_plugin_run_with_extra_splits(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    cfg = {"task": {"kind": "not_installed", "options": {"k": 3}, "train_fraction": 0.5},
           "model": {"arch": "mlp"}, "optim": {"name": "adamw", "lr": 0.001, "weight_decay": 1.0},
           "train": {"steps": 400}, "name": "plug"}
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "summary.json").write_text(json.dumps({"status": "completed", "generalization_split": "test_ood",
                                                  "splits": ["train", "test", "test_ood"]}))
    records = [{"step": s, "train_acc": min(1.0, s / 50), "train_loss": 1 / s, "test_acc": 0.1,
                "test_loss": 2.0, "test_ood_acc": 1.0 if s >= 300 else 0.1, "test_ood_loss": 1.0}
               for s in range(1, 401, 10)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out, err = run_cli(capsys, "show", str(run))
    assert code == 0, err
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert rows["task"] == "not_installed (k=3)"
    assert [k for k in rows if k.endswith("acc / loss")] == ["train acc / loss", "test acc / loss",
                                                             "test_ood acc / loss"]
    assert rows["generalization"] == "test_ood" and rows["generalized step"] == "301 (to within 10 steps)"
    assert rows["outcome"] == "comprehension"  # within detect's default gap of train's step
    code, out, err = run_cli(capsys, "show", str(run), "--gap", "100")
    assert code == 0 and "grokking" in out, err
