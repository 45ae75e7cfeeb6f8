from __future__ import annotations

import pytest
import torch

from grokscope import ModelConfig
from grokscope.models import MLP, Transformer, build_model
from grokscope.tasks import build_task


@pytest.fixture
def task():
    return build_task("modular", "x+y", p=23, train_fraction=0.5, split_seed=0)


@pytest.mark.parametrize("norm", ["none", "pre", "post"])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_last_position_shortcut_matches_full_computation(task, norm, n_layers):
    torch.manual_seed(0)
    cfg = ModelConfig(n_layers=n_layers, d_model=32, n_heads=4, d_mlp=64, norm=norm, activation="gelu")
    model = Transformer(cfg, d_vocab=task.vocab_size, d_vocab_out=task.n_classes).double()
    tokens = task.tokens()[:200]
    fast = model(tokens)  # (batch, classes), table + last-position shortcuts
    full = model(tokens, all_positions=True)  # (batch, pos, classes), every position
    assert fast.shape == (200, task.n_classes) and full.shape == (200, 4, task.n_classes)
    torch.testing.assert_close(fast, full[:, -1], rtol=1e-10, atol=1e-10)
    logits_hooked, cache = model.run_with_cache(tokens)  # hooks attached: the plain path
    torch.testing.assert_close(logits_hooked, fast, rtol=1e-10, atol=1e-10)
    assert cache[f"blocks.{n_layers - 1}.attn.hook_pattern"].shape == (200, 4, 1, 4)
    # causal: at the first block, position 0 attends only to itself
    pattern0 = model.run_with_cache(tokens, all_positions=True)[1]["blocks.0.attn.hook_pattern"]
    assert torch.all(pattern0[:, :, 0, 1:] == 0)
    torch.testing.assert_close(pattern0.sum(-1), torch.ones_like(pattern0.sum(-1)))


@pytest.mark.parametrize("norm", ["none", "pre"])
def test_hooks_after_the_embedding_keep_the_fast_path_and_match_the_plain_one(task, norm):
    torch.manual_seed(2)
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=64, norm=norm)
    model = Transformer(cfg, d_vocab=task.vocab_size, d_vocab_out=task.n_classes).double()
    tokens = task.tokens()[:150]
    names = ["blocks.1.mlp.hook_post", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_q"]
    out_fast, cache_fast = model.run_with_cache(tokens, names=names)  # no embedding hook: fast path
    out_plain, cache_plain = model.run_with_cache(tokens, names=[*names, "hook_embed"])  # plain path
    assert "hook_embed" in cache_plain and "hook_embed" not in cache_fast
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-10, atol=1e-10)
    for n in names:
        torch.testing.assert_close(cache_fast[n], cache_plain[n], rtol=1e-10, atol=1e-10, msg=n)

    def zero_head0(q, _name):  # an edit inside block 0's attention works on both paths
        q = q.clone()  # (batch, pos, head, d_head), as in TransformerLens
        q[:, :, 0] = 0
        return q

    with model.hooks([("blocks.0.attn.hook_q", zero_head0)]):
        edited_fast = model(tokens)
    with model.hooks([("blocks.0.attn.hook_q", zero_head0), ("hook_embed", lambda a, _n: None)]):
        edited_plain = model(tokens)
    torch.testing.assert_close(edited_fast, edited_plain, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(edited_fast, out_fast)
    # an edit of block 0's input must reach its attention: that hook forces the plain path
    with model.hooks([("blocks.0.hook_resid_pre", lambda a, _n: torch.zeros_like(a))]):
        zeroed = model(tokens)
    with torch.no_grad():  # the same model with zero embeddings has a zero block-0 input
        model.embed.W_E.zero_()
        model.pos_embed.W_pos.zero_()
    torch.testing.assert_close(zeroed, model(tokens), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(zeroed, out_fast)


def test_gradients_match_between_paths(task):
    torch.manual_seed(1)
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=2, d_mlp=64, norm="post")
    model = Transformer(cfg, d_vocab=task.vocab_size, d_vocab_out=task.n_classes).double()
    tokens, labels = task.tokens()[:64], task.z[:64]
    torch.nn.functional.cross_entropy(model(tokens), labels).backward()
    fast = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(tokens, all_positions=True)[:, -1], labels).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(fast[n], p.grad, rtol=1e-9, atol=1e-12, msg=n)


def test_transformerlens_names_and_shapes(task):
    cfg = ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=64, norm="none")
    model = build_model(cfg, task)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes["embed.W_E"] == (task.vocab_size, 32)
    assert shapes["pos_embed.W_pos"] == (4, 32)
    assert shapes["blocks.0.attn.W_Q"] == (4, 32, 8)
    assert shapes["blocks.0.attn.W_O"] == (4, 8, 32)
    assert shapes["blocks.0.mlp.W_in"] == (32, 64) and shapes["blocks.0.mlp.W_out"] == (64, 32)
    assert shapes["unembed.W_U"] == (32, task.n_classes)
    assert not any("ln" in n for n in shapes)
    hooks = set(model.hook_points())
    assert {"blocks.0.attn.hook_pattern", "blocks.0.mlp.hook_post", "blocks.0.hook_resid_post",
            "hook_embed"} <= hooks


def test_hooks_can_edit_activations(task):
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=64, norm="none"), task)
    tokens = task.tokens()[:10]
    with model.hooks([("blocks.0.mlp.hook_post", lambda act, name: torch.zeros_like(act))]):
        ablated = model(tokens)
    assert not torch.allclose(ablated, model(tokens))
    with pytest.raises(KeyError, match="unknown hook point"):
        with model.hooks([("nope", lambda a, n: a)]):
            pass


def test_bias_flag_and_init_scale(task):
    torch.manual_seed(0)
    m1 = build_model(ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=64, bias=False), task)
    assert not any(n.split(".")[-1].startswith("b_") for n, _ in m1.named_parameters())
    torch.manual_seed(0)
    cfg3 = ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=64, bias=False, init_scale=3.0)
    m3 = build_model(cfg3, task)
    for (n, a), (_, b) in zip(m1.named_parameters(), m3.named_parameters()):
        if n.endswith(".w") or n.endswith(".b"):
            continue
        torch.testing.assert_close(b, 3.0 * a)


@pytest.mark.parametrize("mlp_input", ["embed", "onehot"])
@pytest.mark.parametrize("activation", ["relu", "gelu", "quadratic"])
def test_mlp(task, mlp_input, activation):
    torch.manual_seed(0)
    cfg = ModelConfig(arch="mlp", n_layers=2, d_model=16, d_mlp=40, mlp_input=mlp_input,
                      activation=activation, bias=False)
    model = build_model(cfg, task)
    assert isinstance(model, MLP)
    logits, cache = model.run_with_cache(task.tokens()[:7])
    assert logits.shape == (7, task.n_classes)
    assert cache["layers.1.hook_post"].shape == (7, 40)
    first = dict(model.named_parameters())["layers.0.W"]
    assert first.shape == ((32 if mlp_input == "embed" else 46), 40)
    if activation == "quadratic":
        torch.testing.assert_close(cache["layers.0.hook_post"], cache["layers.0.hook_pre"] ** 2)
    if mlp_input == "onehot":  # the one-hot input reads only x and y
        x = task.tokens()[:7]
        torch.testing.assert_close(cache["hook_input"][:, : task.n_values].argmax(1), x[:, 0])
        torch.testing.assert_close(cache["hook_input"][:, task.n_values:].argmax(1), x[:, 2])


def test_share_layers_runs_the_first_half_of_the_blocks_twice(task):
    torch.manual_seed(0)
    shared_cfg = ModelConfig(n_layers=4, d_model=32, n_heads=4, d_mlp=64, norm="pre", share_layers=True)
    shared = Transformer(shared_cfg, d_vocab=task.vocab_size, d_vocab_out=task.n_classes).double()
    plain = Transformer(ModelConfig(n_layers=4, d_model=32, n_heads=4, d_mlp=64, norm="pre"),
                        d_vocab=task.vocab_size, d_vocab_out=task.n_classes).double()
    assert len(shared.blocks) == 2
    assert shared.layers[2] is shared.blocks[0] and shared.layers[3] is shared.blocks[1]
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(plain) - n(shared) == sum(p.numel() for p in plain.blocks[:2].parameters())
    # a plain 4-layer model whose blocks 2, 3 carry blocks 0, 1's weights computes the same function
    state = {k: v for k, v in shared.state_dict().items()}
    state.update({k.replace("blocks.0.", "blocks.2.", 1): v for k, v in shared.state_dict().items()
                  if k.startswith("blocks.0.")})
    state.update({k.replace("blocks.1.", "blocks.3.", 1): v for k, v in shared.state_dict().items()
                  if k.startswith("blocks.1.")})
    plain.load_state_dict(state)
    tokens = task.tokens()[:50]
    torch.testing.assert_close(shared(tokens), plain(tokens), rtol=1e-10, atol=1e-10)


def test_share_layers_needs_an_even_transformer():
    from grokscope import RunConfig
    from grokscope.config import validate
    from grokscope.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^model.share_layers: needs model.arch 'transformer' and an even "
                                          r"model.n_layers \(arch 'transformer', n_layers 3\), got True$"):
        validate(RunConfig(model=ModelConfig(n_layers=3, share_layers=True)))
