"""The command line end to end, and bad input: one line naming the field, exit 2, nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from grokscope.cli import main

TINY = ["--task.p", "23", "--train.steps", "30", "--model.d_model", "32", "--model.d_mlp", "64",
        "--log.no-figure"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


BAD = [
    (["--task.op", "x%y"], "task.op: unknown modular op 'x%y'"),
    (["--task.op", "x/y", "--task.p", "96"], "task.p: must be a prime for op 'x/y', got 96"),
    (["--task.p", "2"], "task.p: must be an integer >= 3, got 2"),
    (["--task.train_fraction", "1.5"], "task.train_fraction: must be in (0, 1)"),
    (["--task.train_fraction", "0"], "task.train_fraction: must be in (0, 1)"),
    (["--optim.lr", "-1"], "optim.lr: must be > 0"),
    (["--preset", "nope"], "preset: unknown preset 'nope'; choose one of demo"),
    (["--optim.lrr", "1"], "optim.lrr: unknown field (did you mean 'optim.lr'?)"),
    (["--train.steps", "many"], "train.steps: must be an integer, got 'many'"),
    (["--task.kind", "permutation", "--task.op", "x*y", "--task.n", "7"],
     "task.n: must be between 3 and 6 for permutation tasks, got 7"),
    (["--task.kind", "groups"], "task.kind: must be one of 'modular', 'permutation'"),
    (["--model.activation", "tanh"], "model.activation: must be one of 'relu', 'gelu', 'quadratic'"),
    (["--model.n_heads", "5"], "model.n_heads: must divide model.d_model"),
    (["--optim.weight_decay", "-1"], "optim.weight_decay: must be >= 0"),
    (["--task.label_noise", "1"], "task.label_noise: must be in [0, 1)"),
    (["--optim.betas", "0.9"], "optim.betas: must be 2 numbers"),
    (["--optim.lr"], "optim.lr: missing value"),
    (["--train.batch_size", "0"], "train.batch_size: must be >= 1 or None"),
    (["--model.dropout", "1.0"], "model.dropout: must be in [0, 1)"),
    (["--optim.name", "lion"], "optim.name: must be one of 'adamw', 'adam', 'sgd', 'rmsprop'"),
    (["--train.device", "tpu"], "train.device: must be one of 'auto', 'cpu', 'cuda', 'mps'"),
    (["positional"], "train: unexpected argument 'positional'"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "--out", str(out), *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("grokscope: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    code, _, err = run_cli(capsys, "train", "--out", str(f), *TINY)
    assert code == 2 and "out: " in err and "is a file" in err and len(err.strip().splitlines()) == 1
    assert f.read_text() == "keep me"


def test_out_holding_results_is_not_clobbered(tmp_path, capsys):
    d = tmp_path / "old"
    d.mkdir()
    (d / "metrics.jsonl").write_text("precious\n")
    code, _, err = run_cli(capsys, "train", "--out", str(d), *TINY)
    assert code == 2 and "already exists and is not empty" in err
    assert (d / "metrics.jsonl").read_text() == "precious\n" and len(list(d.iterdir())) == 1


def test_unknown_command_and_show_errors(tmp_path, capsys):
    code, _, err = run_cli(capsys, "trian")
    assert code == 2 and "unknown command 'trian'" in err
    code, _, err = run_cli(capsys, "show", str(tmp_path))
    assert code == 2 and "is not a run directory" in err and len(err.strip().splitlines()) == 1


def test_train_then_show(tmp_path, capsys):
    out = tmp_path / "r"
    code, stdout, _ = run_cli(capsys, "train", "--out", str(out), *TINY, "--optim.lr=3e-3", "--seed", "4")
    assert code == 0
    assert f"run:     {out}" in stdout and "status:  completed after 30 steps" in stdout
    code, stdout, _ = run_cli(capsys, "show", str(out))
    assert code == 0
    assert "x+y mod 23" in stdout and "30 of 30" in stdout and "adamw lr 0.003" in stdout


def test_default_out_is_runs_time_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run_cli(capsys, "train", *TINY)
    assert code == 0
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("-demo") and (runs[0] / "summary.json").exists()


def test_presets_listing(capsys):
    code, stdout, _ = run_cli(capsys, "presets")
    assert code == 0
    for name in ("demo", "power2022", "nanda2023"):
        assert f"\n{name}\n" in "\n" + stdout
    assert "Power et al. 2022" in stdout and "Nanda et al. 2023" in stdout


def test_installed_entry_point_and_help(tmp_path):
    exe = shutil.which("grokscope", path=os.path.dirname(sys.executable))
    assert exe, "the grokscope console script is installed"
    r = subprocess.run([exe, "train", "--task.p", "4", "--task.op", "x/y", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == (
        "grokscope: error: task.p: must be a prime for op 'x/y', got 4")
    r = subprocess.run([exe, "train", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--optim.lr" in r.stdout and "Peak learning rate" in r.stdout
    # a reader that stops early (`grokscope train --help | head -1`) gets no traceback
    proc = subprocess.Popen([exe, "train", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-500:]


def test_init_from_flag_records_lineage(tmp_path, capsys):
    src = tmp_path / "src"
    assert run_cli(capsys, "train", "--out", str(src), *TINY)[0] == 0
    dst = tmp_path / "dst"
    code, stdout, _ = run_cli(capsys, "train", "--out", str(dst), *TINY, "--task.op", "x-y",
                              "--init-from", str(src))
    assert code == 0
    import json

    summary = json.loads((dst / "summary.json").read_text())
    assert summary["lineage"]["init_from"] == str(src) and summary["lineage"]["step"] == 30
    assert json.loads((dst / "config.json").read_text())["train"]["init_from"] == str(src)
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "x"), *TINY, "--init-from", str(tmp_path))
    assert code == 2 and "train.init_from:" in err and not (tmp_path / "x").exists()
