"""Models on tasks other than the binary-operation tables: token sequences with the answer inside,
token outputs, dense vectors, images; hook shapes, incompatible model/task pairs, init_scale,
dropout, and two tiny trainings (CNN, LSTM)."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from grokscope import ModelConfig
from grokscope.errors import ConfigError
from grokscope.models import CNN, MLP, RNN, Transformer, build_model, set_dropout
from grokscope.tasks import Split, Task, build_task

N, SEQ, VOCAB, CLASSES = 40, 6, 7, 5
SMALL = dict(n_layers=2, d_model=16, n_heads=4, d_mlp=24, cnn_channels=(4, 6))


def _splits(inputs, targets, mask=None, n_train=30):
    cut = lambda t: (None if t is None else t[:n_train], None if t is None else t[n_train:])
    (xa, xb), (ya, yb), (ma, mb) = cut(inputs), cut(targets), cut(mask)
    return {"train": Split(xa, ya, ma), "test": Split(xb, yb, mb)}


def token_task(answer_position: int = 2, output: str = "classes", **kw) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, VOCAB, (N, SEQ), generator=g)  # (n, seq)
    if output == "tokens":
        y, mask = torch.roll(x, -1, dims=1) % CLASSES, torch.ones(N, SEQ, dtype=torch.bool)
        mask[:, -1] = False
    else:
        y, mask = x[:, 0] % CLASSES, None
    return Task(kind="toy_tokens", splits=_splits(x, y, mask), input_kind="tokens", input_shape=(SEQ,),
                n_classes=CLASSES, output=output, vocab_size=VOCAB, answer_position=answer_position, **kw)


def vector_task(output: str = "classes") -> Task:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 10, generator=g)
    y = (x[:, :2] * 2) if output == "regression" else (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return Task(kind="toy_vectors", splits=_splits(x, y), input_kind="vector", input_shape=(10,),
                n_classes=2 if output == "regression" else 3, output=output)


def image_task(shape=(1, 8, 8), n_classes: int = 2) -> Task:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(N, *shape, generator=g)
    return Task(kind="toy_images", splits=_splits(x, torch.randint(0, n_classes, (N,), generator=g)),
                input_kind="image", input_shape=shape, n_classes=n_classes)


def _model(arch: str, task: Task, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(arch=arch, **{**SMALL, **kw}), task)


# ------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize(("arch", "make", "shape"), [
    ("transformer", token_task, (10, CLASSES)),
    ("lstm", token_task, (10, CLASSES)),
    ("gru", token_task, (10, CLASSES)),
    ("mlp", token_task, (10, CLASSES)),
    ("transformer", lambda: token_task(output="tokens"), (10, SEQ, CLASSES)),
    ("lstm", lambda: token_task(output="tokens"), (10, SEQ, CLASSES)),
    ("gru", lambda: token_task(output="tokens"), (10, SEQ, CLASSES)),
    ("mlp", vector_task, (10, 3)),
    ("mlp", lambda: vector_task("regression"), (10, 2)),
    ("mlp", image_task, (10, 2)),
    ("cnn", image_task, (10, 2)),
    ("cnn", lambda: image_task((3, 5, 7), 4), (10, 4)),
])
def test_output_shapes(arch, make, shape):
    task = make()
    model = _model(arch, task)
    out = model(task.train.inputs[:10])
    assert out.shape == shape and out.dtype == torch.float32
    out.sum().backward()  # every parameter gets a gradient
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("answer_position", [2, -1, SEQ - 1])
@pytest.mark.parametrize("norm", ["none", "pre", "post"])
def test_transformer_fast_path_equals_plain_path(answer_position, norm):
    task = token_task(answer_position)
    model = _model("transformer", task, norm=norm, activation="gelu").double()
    x = task.train.inputs
    fast = model(x)  # (batch, classes): (token, position) table, last-position shortcut when it applies
    full = model(x, all_positions=True)  # (batch, pos, classes)
    hooked, cache = model.run_with_cache(x)  # hooks attached: the plain path
    assert fast.shape == (30, CLASSES) and full.shape == (30, SEQ, CLASSES)
    torch.testing.assert_close(fast, full[:, answer_position], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(hooked, fast, rtol=1e-10, atol=1e-10)
    q_pos = 1 if answer_position % SEQ == SEQ - 1 else SEQ  # the last block's queries
    assert cache["blocks.1.attn.hook_pattern"].shape == (30, 4, q_pos, SEQ)
    labels = task.train.targets  # gradients agree too
    F.cross_entropy(model(x), labels).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    with model.hooks([("hook_embed", lambda a, _n: None)]):  # plain path
        F.cross_entropy(model(x), labels).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-9, atol=1e-12, msg=n)


def test_transformer_token_outputs_are_causal():
    task = token_task(output="tokens")
    model = _model("transformer", task, norm="pre").double()
    x = task.train.inputs[:8]
    out = model(x)
    torch.testing.assert_close(out, model(x, all_positions=True))
    torch.testing.assert_close(out, model.run_with_cache(x)[0], rtol=1e-10, atol=1e-10)
    x2 = x.clone()
    x2[:, 3] = (x2[:, 3] + 1) % VOCAB  # changing token 3 changes positions >= 3 only
    out2 = model(x2)
    torch.testing.assert_close(out2[:, :3], out[:, :3], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out2[:, 3], out[:, 3])


def test_transformer_hook_shapes_follow_transformerlens():
    task = token_task(answer_position=-1)
    model = _model("transformer", task, norm="none", n_layers=2).double()
    x = task.train.inputs[:9]
    _, c = model.run_with_cache(x)
    for layer, q_pos in [(0, SEQ), (1, 1)]:  # the last block computes only the answer position
        a = f"blocks.{layer}.attn."
        assert c[a + "hook_q"].shape == (9, q_pos, 4, 4)  # (batch, pos, head, d_head)
        assert c[a + "hook_k"].shape == (9, SEQ, 4, 4) and c[a + "hook_v"].shape == (9, SEQ, 4, 4)
        assert c[a + "hook_z"].shape == (9, q_pos, 4, 4)
        assert c[a + "hook_attn_scores"].shape == (9, 4, q_pos, SEQ)  # (batch, head, q_pos, k_pos)
        assert c[a + "hook_pattern"].shape == (9, 4, q_pos, SEQ)
    attn = model.blocks[0].attn  # the cached tensors are what TransformerLens' einsums give
    resid = c["blocks.0.hook_resid_pre"]  # (batch, pos, d_model)
    q = torch.einsum("bpd,hde->bphe", resid, attn.W_Q) + attn.b_Q  # (batch, pos, head, d_head)
    torch.testing.assert_close(c["blocks.0.attn.hook_q"], q)
    z = torch.einsum("bhqk,bkhe->bqhe", c["blocks.0.attn.hook_pattern"], c["blocks.0.attn.hook_v"])
    torch.testing.assert_close(c["blocks.0.attn.hook_z"], z)
    base = model(x)

    def zero_z_head1(z, _name):  # editing hook_z takes effect
        z = z.clone()
        z[:, :, 1] = 0
        return z

    with model.hooks([("blocks.1.attn.hook_z", zero_z_head1)]):
        edited = model(x)
    attn1, resid_mid = model.blocks[1].attn, c["blocks.1.hook_resid_mid"]  # (batch, 1, d_model)
    z1 = c["blocks.1.attn.hook_z"][:, :, 1]  # (batch, 1, d_head): head 1
    drop = torch.einsum("bqe,ed->bqd", z1, attn1.W_O[1])  # (batch, 1, d_model)
    with model.hooks([("blocks.1.hook_resid_mid", lambda a, _n: resid_mid - drop)]):
        expected = model(x)
    torch.testing.assert_close(edited, expected, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(edited, base)


def test_cnn_and_rnn_hooks():
    task = image_task()
    _, c = _model("cnn", task).run_with_cache(task.train.inputs[:5])
    assert c["convs.0.hook_post"].shape == (5, 4, 8, 8) and c["convs.1.hook_pre"].shape == (5, 6, 4, 4)
    assert c["hook_features"].shape == (5, 6 * 2 * 2)
    assert c["layers.0.hook_post"].shape == (5, 24) and c["layers.1.hook_pre"].shape == (5, 24)
    task = token_task()
    for arch in ("lstm", "gru"):
        model = _model(arch, task)
        out, c = model.run_with_cache(task.train.inputs[:5])
        assert c["hook_embed"].shape == (5, SEQ, 16) and c["hook_rnn_out"].shape == (5, SEQ, 16)
        torch.testing.assert_close(out, c["hook_rnn_out"][:, 2] @ model.W_U + model.b_U)


@pytest.mark.parametrize(("kernel_size", "pool", "shape", "hw"), [
    (3, "max", (1, 8, 8), [(4, 4), (2, 2)]),
    (2, "avg", (1, 7, 5), [(3, 2), (1, 1)]),  # even kernel: asymmetric 'same' padding
    (4, "max", (2, 1, 8), [(1, 4), (1, 2)]),  # a 1-pixel dimension is not pooled
    (3, "max", (1, 2, 2), [(1, 1), (1, 1)]),  # nor a 1x1 map
    (5, "none", (1, 6, 6), [(6, 6), (6, 6)]),
])
def test_cnn_padding_and_pooling(kernel_size, pool, shape, hw):
    task = image_task(shape)
    model = _model("cnn", task, kernel_size=kernel_size, pool=pool)
    _, c = model.run_with_cache(task.train.inputs[:3])
    for i, size in enumerate(hw):  # 'same' padding: each conv keeps its input's size
        assert tuple(c[f"convs.{i}.hook_post"].shape[2:]) == (shape[1:] if i == 0 else hw[i - 1])
        assert model.convs[i].out_hw == size
    assert c["hook_features"].shape == (3, 6 * hw[-1][0] * hw[-1][1])


def test_mlp_reads_positions_and_vocab_of_the_task():
    task = token_task(read_positions=(0, 3), read_vocab=5)
    embed = _model("mlp", task, mlp_input="embed")
    assert embed.W_E.shape == (5, 16) and embed.layers[0].W.shape == (2 * 16, 24)
    model = _model("mlp", task, mlp_input="onehot")
    assert model.layers[0].W.shape == (2 * 5, 24)
    x = task.train.inputs.clamp_max(4)  # values at the read positions lie in 0..read_vocab-1
    _, c = model.run_with_cache(x)
    torch.testing.assert_close(c["hook_input"][:, :5].argmax(1), x[:, 0])
    torch.testing.assert_close(c["hook_input"][:, 5:].argmax(1), x[:, 3])
    everything = _model("mlp", token_task(), mlp_input="onehot")  # read_positions None: all, full vocab
    assert everything.layers[0].W.shape == (SEQ * VOCAB, 24)
    vec = _model("mlp", vector_task(), n_layers=1)
    assert vec.layers[0].W.shape == (10, 24) and vec.W_E is None
    img = _model("mlp", image_task((3, 4, 4)), n_layers=0)
    assert img.W_U.shape == (48, 2)


def test_table_models_are_the_tables_models():
    """build_model on a table task gives the same parameters as the tables' own constructors."""
    task = build_task("modular", "x+y", p=11, train_fraction=0.5, split_seed=0)
    for arch, make in [("mlp", lambda cfg: MLP(cfg, n_values=11, n_classes=11)),
                       ("transformer", lambda cfg: Transformer(cfg, d_vocab=13, d_vocab_out=11))]:
        for mlp_input in ("embed", "onehot"):
            cfg = ModelConfig(arch=arch, n_layers=1, d_model=16, n_heads=4, d_mlp=24, mlp_input=mlp_input)
            torch.manual_seed(0)
            a = build_model(cfg, task)
            torch.manual_seed(0)
            b = make(cfg)
            sa, sb = a.state_dict(), b.state_dict()
            assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
            x = task.train.inputs
            assert torch.equal(a(x), b(x))


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("arch", "make", "words"), [
    ("cnn", token_task, ["'cnn'", "image inputs", "tokens inputs", "transformer, mlp, lstm or gru"]),
    ("cnn", vector_task, ["'cnn'", "image inputs", "vector inputs", "(use mlp"]),
    ("transformer", vector_task, ["'transformer'", "needs tokens inputs", "vector inputs", "(use mlp"]),
    ("lstm", image_task, ["'lstm'", "tokens inputs", "image inputs", "(use mlp or cnn)"]),
    ("gru", image_task, ["'gru'", "image inputs"]),
    ("mlp", lambda: token_task(output="tokens"), ["'mlp'", "tokens outputs", "transformer, lstm or gru"]),
])
def test_incompatible_model_and_task(arch, make, words):
    task = make()
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(arch=arch, **SMALL), task)
    msg = str(err.value)
    assert msg.startswith("model.arch: ") and "\n" not in msg and repr(task.kind) in msg
    for w in words:
        assert w in msg, msg


def test_incompatible_message_for_the_tables():
    task = build_task("modular", "x+y", p=11, train_fraction=0.5, split_seed=0)
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(arch="cnn"), task)
    assert str(err.value) == ("model.arch: 'cnn' needs image inputs; task kind 'modular' gives tokens "
                              "inputs (use transformer, mlp, lstm or gru)")


# ------------------------------------------------------------------------------------ init, dropout


@pytest.mark.parametrize(("arch", "make"), [("cnn", image_task), ("lstm", token_task), ("gru", token_task)])
def test_init_scale_multiplies_every_parameter(arch, make):
    task = make()
    base = dict(_model(arch, task).named_parameters())
    scaled = dict(_model(arch, task, init_scale=2.5).named_parameters())
    assert list(base) == list(scaled)
    for n, p in base.items():
        torch.testing.assert_close(scaled[n], 2.5 * p, msg=n)


@pytest.mark.parametrize(("arch", "make", "n_layers"), [
    ("transformer", token_task, 2), ("mlp", vector_task, 2), ("cnn", image_task, 1),
    ("lstm", token_task, 2), ("gru", token_task, 3), ("lstm", token_task, 1),
])
def test_set_dropout(arch, make, n_layers):
    task = make()
    model = _model(arch, task, n_layers=n_layers)
    model.train()
    x = task.train.inputs
    torch.testing.assert_close(model(x), model(x))  # no dropout yet
    set_dropout(model, 0.5)
    assert all(m.dropout_p == 0.5 for m in model.modules() if hasattr(m, "dropout_p"))
    if isinstance(model, RNN):
        assert model.cell.dropout == (0.5 if n_layers > 1 else 0.0)
    if arch == "lstm" and n_layers == 1:
        return  # a single recurrent layer has no inter-layer dropout
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    set_dropout(model, 0.0)
    torch.testing.assert_close(model(x), model(x))


# ------------------------------------------------------------------------------------ training


def _train(model, train: Split, steps: int, lr: float) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(train.inputs), train.targets).backward()
        opt.step()
    model.eval()


def _accuracy(model, split: Split) -> float:
    with torch.no_grad():
        return (model(split.inputs).argmax(-1) == split.targets).float().mean().item()


def test_cnn_learns_left_versus_right():
    g = torch.Generator().manual_seed(0)
    n = 200
    side = torch.randint(0, 2, (n,), generator=g)  # 0: square in the left half, 1: in the right half
    x = 0.2 * torch.rand(n, 1, 8, 8, generator=g)
    rows = torch.randint(0, 6, (n,), generator=g)
    cols = torch.randint(0, 2, (n,), generator=g) + 4 * side  # a 3x3 square inside its half
    for i in range(n):
        x[i, 0, rows[i]:rows[i] + 3, cols[i]:cols[i] + 3] = 1.0
    splits = {"train": Split(x[:150], side[:150]), "test": Split(x[150:], side[150:])}
    task = Task(kind="left_right", splits=splits, input_kind="image", input_shape=(1, 8, 8), n_classes=2)
    model = _model("cnn", task, cnn_channels=(8,), n_layers=1, d_mlp=32)
    assert isinstance(model, CNN)
    t0 = time.perf_counter()
    _train(model, task.train, steps=150, lr=1e-2)
    assert time.perf_counter() - t0 < 10
    assert _accuracy(model, task.splits["test"]) >= 0.95


def test_lstm_remembers_the_first_token():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (400, SEQ), generator=g)
    splits = {"train": Split(x[:300], x[:300, 0]), "test": Split(x[300:], x[300:, 0])}
    task = Task(kind="first_token", splits=splits, input_kind="tokens", input_shape=(SEQ,), n_classes=5,
                vocab_size=5)
    model = _model("lstm", task, n_layers=1, d_model=32)
    t0 = time.perf_counter()
    _train(model, task.train, steps=150, lr=1e-2)
    assert time.perf_counter() - t0 < 10
    assert _accuracy(model, task.splits["test"]) >= 0.95
