"""A CNN on a small image task and an LSTM/GRU on a small sequence task train end to end through the
engine (run directory, metrics of every split, summary), tiny settings; task kinds registered here."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from grokscope import (
    ConfigError,
    LogConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    RunDir,
    Split,
    Task,
    TaskConfig,
    TrainConfig,
    detect,
    register_task,
    train,
)


def _images(cfg) -> Task:
    """1x8x8 images: a bright 3x3 square at a random place plus noise; label = left or right half.
    Splits: train, test, and test_shifted (squares only in the middle columns 2..4, harder)."""
    g = torch.Generator().manual_seed(cfg.effective_split_seed)

    def make(n, cols):
        x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
        r = torch.randint(0, 6, (n,), generator=g)
        c = cols[torch.randint(0, len(cols), (n,), generator=g)]
        for i in range(n):
            x[i, 0, r[i]:r[i] + 3, c[i]:c[i] + 3] += 1.0
        return Split(x, (c + 1 >= 4).long())  # square's centre column in the right half

    every = torch.arange(6)
    return Task(kind="square_side", splits={"train": make(200, every), "test": make(200, every),
                                            "test_shifted": make(100, torch.tensor([2, 3]))},
                input_kind="image", input_shape=(1, 8, 8), n_classes=2, meta={"kind": "square_side"})


def _sequences(cfg) -> Task:
    """Token sequences of length 6 over 5 symbols; the answer (read at position 2) is the first token."""
    g = torch.Generator().manual_seed(cfg.effective_split_seed)
    x = torch.randint(0, 5, (600, 6), generator=g)
    s = lambda a, b: Split(x[a:b], x[a:b, 0])  # noqa: E731
    return Task(kind="first_token", splits={"train": s(0, 400), "test": s(400, 600)}, input_kind="tokens",
                input_shape=(6,), n_classes=5, vocab_size=5, answer_position=2, meta={"kind": "first_token"})


register_task("square_side", _images, replace=True)
register_task("first_token", _sequences, replace=True)


def _config(kind: str, model: ModelConfig, steps: int) -> RunConfig:
    return RunConfig(name=kind, seed=0, task=TaskConfig(kind=kind), model=model,
                     optim=OptimConfig(lr=3e-3, weight_decay=0.01, warmup_steps=5),
                     train=TrainConfig(steps=steps, batch_size=64, eval_every=25),
                     log=LogConfig(figure=False, report=False, progress=False))


def test_cnn_learns_an_image_task_and_logs_every_split(tmp_path):
    model = ModelConfig(arch="cnn", cnn_channels=(8, 16), kernel_size=3, n_layers=1, d_mlp=32)
    result = train(_config("square_side", model, 300), tmp_path / "cnn")
    s = result.summary
    assert s["splits"] == ["train", "test", "test_shifted"] and s["status"] == "completed"
    last = result.metrics[-1]
    assert last["train_acc"] >= 0.95 and last["test_acc"] >= 0.9, last
    assert "test_shifted_acc" in last and "test_shifted_loss" in last
    assert s["final"]["test_shifted_acc"] == last["test_shifted_acc"]
    assert RunDir(result.path).read_metrics()[0]["step"] == 0


def test_lstm_and_gru_learn_a_sequence_task(tmp_path):
    for arch in ("lstm", "gru"):
        model = ModelConfig(arch=arch, n_layers=1, d_model=32)
        result = train(_config("first_token", model, 300), tmp_path / arch)
        last = result.metrics[-1]
        assert last["train_acc"] >= 0.95 and last["test_acc"] >= 0.95, (arch, last)
        assert result.summary["events"]["generalized_step"] is not None


def test_generalization_split_override_moves_detection(tmp_path):
    cfg = _config("square_side", ModelConfig(arch="mlp", n_layers=1, d_mlp=64), 100)
    cfg = replace(cfg, task=replace(cfg.task, generalization_split="test_shifted"))
    result = train(cfg, tmp_path / "gen")
    assert result.summary["generalization_split"] == "test_shifted"
    n = result.summary["split_sizes"]["test_shifted"]
    assert n == 100 and detect.eval_size(result.summary, "test_shifted") == n
    expected = detect.analyze(result.metrics, split="test_shifted", n_eval=n)["events"]
    assert result.summary["events"] == expected
    assert result.summary["events"] != detect.analyze(result.metrics, split="test")["events"] or \
        result.metrics[-1]["test_acc"] == result.metrics[-1]["test_shifted_acc"]


def test_unknown_generalization_split_is_a_one_line_error(tmp_path):
    cfg = _config("square_side", ModelConfig(arch="mlp"), 10)
    cfg = replace(cfg, task=replace(cfg.task, generalization_split="test_ood"))
    with pytest.raises(ConfigError, match=r"^task\.generalization_split: must be one of the task's splits "
                                          r"'test', 'test_shifted', got 'test_ood'$"):
        train(cfg, tmp_path / "x")
    assert not (tmp_path / "x").exists()


class _ConfidenceTask(Task):
    """The image task plus its own eval measure: mean max-softmax probability on the test split."""

    def measures(self, model, device):
        with torch.no_grad():
            probs = model(self.splits["test"].inputs.to(device)).softmax(-1)
        return {"test_confidence": float(probs.max(-1).values.mean())}


def _confident_images(cfg) -> Task:
    t = _images(cfg)
    return _ConfidenceTask(kind="confident_square", splits=t.splits, input_kind="image",
                           input_shape=(1, 8, 8), n_classes=2, meta={"kind": "confident_square"},
                           measure_names=("test_confidence",))


register_task("confident_square", _confident_images, replace=True)


def test_task_measures_are_logged_and_drawn(tmp_path):
    cfg = _config("confident_square", ModelConfig(arch="mlp", n_layers=1, d_mlp=32), 60)
    cfg = replace(cfg, log=replace(cfg.log, report=True))
    result = train(cfg, tmp_path / "m")
    assert result.summary["measures"] == ["test_confidence"]
    values = [r["test_confidence"] for r in result.metrics]
    assert all(0.5 <= v <= 1 for v in values) and values[-1] > values[0]
    html = (result.path / "report.html").read_text()
    assert 'id="fig-measures"' in html and (result.path / "figures" / "measures.png").is_file()
