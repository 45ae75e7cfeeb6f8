"""Logit lens and causal tracing (analysis/reasoning.py) on a small pre-LN transformer."""

from __future__ import annotations

import pytest
import torch

from grokscope import ModelConfig
from grokscope.analysis.reasoning import causal_trace, decode, logit_lens_ranks, mrr, residual_stream
from grokscope.models import Transformer


@pytest.fixture(params=[False, True], ids=["plain", "shared"])
def model(request):
    torch.manual_seed(0)
    cfg = ModelConfig(n_layers=4, d_model=32, n_heads=4, d_mlp=64, norm="pre", share_layers=request.param)
    return Transformer(cfg, d_vocab=30, d_vocab_out=30, n_ctx=3, output="tokens").double().eval()


def test_the_last_state_decodes_to_the_model_output_and_lens_ranks_count_better_logits(model):
    tokens = torch.randint(0, 30, (40, 3))
    states = residual_stream(model, tokens)
    assert len(states) == 5 and all(s.shape == (40, 3, 32) for s in states)
    torch.testing.assert_close(decode(model, states[-1]), model(tokens), rtol=1e-10, atol=1e-10)
    target = torch.randint(0, 30, (40,))
    ranks = logit_lens_ranks(model, states, 1, target)
    assert ranks.shape == (5, 40)
    logits = model(tokens)[:, 1]  # the final layer's decoding at position 1
    order = logits.argsort(-1, descending=True)
    expected = (order == target[:, None]).nonzero()[:, 1]
    assert torch.equal(ranks[-1], expected)
    top = logits.argmax(-1)
    assert (logit_lens_ranks(model, states, 1, top)[-1] == 0).all()
    assert mrr(torch.tensor([[0, 1, 3]])).item() == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    per_row = logit_lens_ranks(model, states, torch.full((40,), 1), target)  # positions per query
    assert torch.equal(per_row, ranks)


def test_causal_trace_flips_only_what_the_patched_state_can_reach(model):
    torch.manual_seed(1)
    clean = torch.randint(0, 30, (60, 3))
    corrupt = clean.clone()
    corrupt[:, 0] = (clean[:, 0] + 1 + torch.randint(0, 28, (60,))) % 30  # another first token
    answer = model(clean)[:, -1].argmax(-1)  # the clean run's own answers: nothing flips unpatched
    same = causal_trace(model, clean, clean, 0, answer)
    assert same.shape == (5,) and (same == 0).all()
    # the last layer's state at the read position decides the prediction outright
    flipped = (model(corrupt)[:, -1].argmax(-1) != answer).double().mean()
    assert flipped > 0.2  # the first token matters to a random model: the checks below can fail
    late = causal_trace(model, clean, corrupt, 2, answer)  # position 2: corrupt and clean differ at pos 0
    assert late[-1] == flipped  # the corrupted run's final state at the read position is its answer
    # patching position 0 after the last layer cannot reach the read position (it is never read again)
    assert causal_trace(model, clean, corrupt, 0, answer)[-1] == 0
    # at the embedding, patching position 0 is running the corrupted query
    assert causal_trace(model, clean, corrupt, 0, answer)[0] == flipped
