"""The digits task: scikit-learn's 8x8 images, split class by class with the split seed."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from grokscope import RunConfig, TaskConfig
from grokscope.config import validate
from grokscope.errors import ConfigError
from grokscope.tasks import task_from_config
from grokscope.tasks.images import N_DIGITS, load_digits, stratified_split
from grokscope.tasks.table import apply_label_noise


def _task(seed=0, **task):
    options = task.pop("options", {"train_size": 500})
    return task_from_config(validate(RunConfig(seed=seed, task=TaskConfig(kind="digits", options=options,
                                                                          **task))))


def test_digits_are_images_in_unit_range_with_every_image_in_one_split():
    t = _task()
    train, test = t.splits["train"], t.splits["test"]
    assert t.input_kind == "image" and t.input_shape == (1, 8, 8) and t.n_classes == 10
    assert len(train) == 500 and len(test) == N_DIGITS - 500
    assert train.inputs.shape == (500, 1, 8, 8) and train.inputs.dtype == torch.float32
    assert 0 <= float(train.inputs.min()) and float(train.inputs.max()) == 1.0
    images, _ = load_digits()
    rows = {tuple(x.flatten().tolist()) for x in images}
    split_rows = [tuple(x.flatten().tolist()) for x in torch.cat([train.inputs, test.inputs])]
    assert len(split_rows) == N_DIGITS and set(split_rows) == rows


def test_split_is_stratified_and_seeded():
    labels = load_digits()[1]
    tr, te = stratified_split(labels, 300, seed=3)
    assert len(tr) == 300 and len(set(tr.tolist()) | set(te.tolist())) == N_DIGITS
    share = torch.bincount(labels[tr], minlength=10).double() / 300
    whole = torch.bincount(labels, minlength=10).double() / N_DIGITS
    assert (share - whole).abs().max() <= 1 / 300 + 1e-12  # each class within one image of its share
    assert torch.equal(tr, stratified_split(labels, 300, seed=3)[0])
    assert not torch.equal(tr, stratified_split(labels, 300, seed=4)[0])
    a, b = _task(seed=1), _task(seed=1)
    assert torch.equal(a.splits["train"].inputs, b.splits["train"].inputs)
    assert _task(seed=1, options={"train_size": 0.5}).meta["n_train"] == round(0.5 * N_DIGITS)


def test_label_noise_flips_that_many_labels_to_other_classes_and_keeps_a_clean_split():
    t = _task(label_noise=0.2)
    noisy, clean = t.splits["train"].targets, t.splits["train_clean"].targets
    assert torch.equal(t.splits["train"].inputs, t.splits["train_clean"].inputs)
    assert int((noisy != clean).sum()) == t.meta["n_noisy"] == 100
    given, true = t.splits["train_noisy"].targets, t.splits["train_noisy_true"].targets
    assert len(given) == 100 and bool((given != true).all())  # the corrupted images, both labels
    out, flipped = apply_label_noise(torch.arange(10).repeat(10), 10, 0.5, 0)
    assert int(flipped.sum()) == 50 and int((out != torch.arange(10).repeat(10)).sum()) == 50


@pytest.mark.parametrize("options, message", [
    ({"train_size": 0}, "task.options.train_size: must be > 0"),
    ({"train_size": 5}, "task.options.train_size: must give 10..1787 of the 1797 images, got 5"),
    ({"train_size": 1790}, "task.options.train_size: must give 10..1787"),
    ({"train_size": 10.5}, "task.options.train_size: a count must be a whole number, got 10.5"),
    ({"train_size": "many"}, "task.options.train_size"),
])
def test_bad_train_size_is_one_line_naming_the_field(options, message):
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        _task(options=options)


# ------------------------------------------------------------------------------ a user's image files

def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 6, 5), generator=g, dtype=torch.uint8)
    return x, torch.arange(n) % 3


def _write_idx(path, array):
    import struct
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + bytes(array.flatten().tolist()))


def _files_task(tmp_path, path, seed=0, **options):
    from grokscope.config import validate

    task = TaskConfig(kind="image_files", options={"path": str(path), **options})
    return task_from_config(validate(RunConfig(seed=seed, task=task)))


def _npz(path, xtr, ytr, xte, yte):
    import numpy as np

    np.savez(path, x_train=xtr.numpy(), y_train=ytr.numpy(), x_test=xte.numpy(), y_test=yte.numpy())


def test_npz_and_idx_files_give_the_same_task(tmp_path):
    import gzip


    (xtr, ytr), (xte, yte) = _images(30, 0), _images(12, 1)
    _npz(tmp_path / "data.npz", xtr, ytr, xte, yte)
    folder = tmp_path / "idx"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte", xtr)
    _write_idx(folder / "train-labels-idx1-ubyte", ytr.to(torch.uint8))
    _write_idx(folder / "t10k-images-idx3-ubyte", xte)
    raw = folder / "t10k-labels-idx1-ubyte"
    _write_idx(raw, yte.to(torch.uint8))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw.read_bytes()))
    raw.unlink()  # the .gz is read instead
    a, b = _files_task(tmp_path, tmp_path / "data.npz"), _files_task(tmp_path, folder)
    for t in (a, b):
        assert t.input_kind == "image" and t.input_shape == (1, 6, 5) and t.n_classes == 3
        assert torch.equal(t.splits["train"].inputs, xtr.float().unsqueeze(1) / 255)
        assert torch.equal(t.splits["test"].targets, yte)
    sub = _files_task(tmp_path, folder, train_size=9)
    assert sub.meta["train_class_counts"] == [3, 3, 3]  # class-balanced
    again = _files_task(tmp_path, folder, train_size=9)
    assert torch.equal(sub.splits["train"].inputs, again.splits["train"].inputs)


def test_bad_image_files_are_one_line_errors_and_pickles_are_refused(tmp_path):
    import numpy as np

    with pytest.raises(ConfigError, match=r"^task\.options\.path: must be a \.npz file or a folder"):
        _files_task(tmp_path, tmp_path / "missing.npz")
    np.savez(tmp_path / "part.npz", x_train=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ConfigError, match=r"^task\.options\.path: .* lacks arrays \['y_train', 'x_test', "):
        _files_task(tmp_path, tmp_path / "part.npz")
    objects = np.empty(2, dtype=object)
    np.savez(tmp_path / "pickled.npz", x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    with pytest.raises(ConfigError, match=r"^task\.options\.path: .* not a readable \.npz without pickles"):
        _files_task(tmp_path, tmp_path / "pickled.npz")
    (tmp_path / "idx").mkdir()
    header = b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" * 3  # 2 x 2 x 2 bytes promised
    (tmp_path / "idx" / "train-images-idx3-ubyte").write_bytes(header + b"\x01")
    with pytest.raises(ConfigError, match=r"^task\.options\.path: .* holds 1 bytes, its header says 8"):
        _files_task(tmp_path, tmp_path / "idx")
    xtr, ytr = _images(6, 0)
    _npz(tmp_path / "ok.npz", xtr, ytr, xtr, ytr)
    with pytest.raises(ConfigError, match=r"^task\.options\.train_size: the files have 6 training images"):
        _files_task(tmp_path, tmp_path / "ok.npz", train_size=7)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_init_scale_multiplies_every_parameter_of_the_image_models(arch):
    from grokscope.config import ModelConfig
    from grokscope.models import build_model

    task = _task()
    built = {}
    for alpha in (1.0, 8.0):
        torch.manual_seed(5)
        built[alpha] = build_model(ModelConfig(arch=arch, n_layers=1, d_mlp=16, cnn_channels=(4,),
                                               init_scale=alpha), task).state_dict()
    assert built[1.0].keys() == built[8.0].keys()
    for name, w in built[1.0].items():
        assert torch.allclose(built[8.0][name], 8 * w), name
    out = build_model(ModelConfig(arch=arch, n_layers=1, d_mlp=16, cnn_channels=(4,)), task)(
        task.splits["train"].inputs[:3])
    assert out.shape == (3, 10)


def test_image_presets_are_digits_runs_and_the_control_differs_only_in_alpha():
    from grokscope import get_preset

    grok, control = get_preset("omnigrok_digits"), get_preset("omnigrok_digits_control")
    assert grok.task.kind == "digits" and grok.train.loss == "mse" and grok.model.init_scale > 1
    same_alpha = replace(control.model, init_scale=grok.model.init_scale)
    assert replace(control, name=grok.name, model=same_alpha) == grok
    assert control.model.init_scale == 1.0
    hum = get_preset("humayun_digits")
    assert hum.task.options["robust_n"] > 0  # the robustness preset measures; omnigrok's do not
    assert grok.task.options["robust_n"] == 0
    for name in ("omnigrok_digits", "omnigrok_digits_control", "humayun_digits", "digits_cnn"):
        task_from_config(validate(get_preset(name)))  # every image preset builds
