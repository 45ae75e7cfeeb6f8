"""Mechanism probes for the knowledge-graph tasks (Wang et al. 2024): the logit lens and causal
tracing on a pre-LN transformer (models/transformer.py) over token queries.

- `residual_stream(model, tokens)`: the residual stream after the embedding and after every layer,
  [(batch, pos, d_model)] * (n_layers + 1) (with shared layers, each application counts).
- `logit_lens_ranks(model, resid, position, target)`: each layer's state at `position` decoded
  through the final LayerNorm and the unembedding; the rank of `target` (0 = top-1) per layer.
- `causal_trace(model, clean, corrupt, position, answer)`: for each layer l, the clean run with its
  state after l layers at `position` replaced by the corrupted run's, carried on to the output; the
  share of queries whose top-1 answer is no longer `answer` (Wang et al.'s "ratio of alterations").
- `mrr(ranks)`: the mean reciprocal rank, mean(1 / (rank + 1)).
"""

from __future__ import annotations

import torch

from grokscope.models.layers import eval_mode

__all__ = ["causal_trace", "decode", "logit_lens_ranks", "mrr", "residual_stream"]


def _check(model) -> None:
    if not hasattr(model, "layers") or getattr(model.cfg, "norm", None) != "pre":
        raise ValueError("the logit lens and causal tracing need a pre-LN transformer (model.norm 'pre')")


@torch.no_grad()
def residual_stream(model, tokens: torch.Tensor) -> list[torch.Tensor]:
    """[(batch, pos, d_model)] states: after the embedding, then after each of the n_layers layers."""
    _check(model)
    with eval_mode(model):
        T = tokens.shape[1]
        resid = model.embed.W_E[tokens] + model.pos_embed.W_pos[:T]
        states = [resid]
        for block in model.layers:
            resid = block(resid, last_only=False)
            states.append(resid)
    return states


@torch.no_grad()
def decode(model, state: torch.Tensor) -> torch.Tensor:
    """(..., d_model) residual states -> (..., d_vocab_out) logits through the final LN and unembedding."""
    return model.unembed(model.ln_final(state))


@torch.no_grad()
def logit_lens_ranks(model, states: list[torch.Tensor], position: int | torch.Tensor,
                     target: torch.Tensor) -> torch.Tensor:
    """(n_states, batch) long: the rank of target[b] among the decoded logits of each state at
    `position` (an int, or a (batch,) long tensor of positions); 0 means top-1."""
    rows = torch.arange(target.shape[0])
    pos = position if isinstance(position, torch.Tensor) else torch.full_like(target, position)
    out = []
    for s in states:
        logits = decode(model, s[rows, pos])  # (batch, vocab)
        out.append((logits > logits[rows, target][:, None]).sum(-1))
    return torch.stack(out)


def mrr(ranks: torch.Tensor) -> torch.Tensor:
    """Mean reciprocal rank over the last dim of a rank tensor (0 = top-1)."""
    return (1.0 / (ranks.double() + 1)).mean(-1)


@torch.no_grad()
def causal_trace(model, clean: torch.Tensor, corrupt: torch.Tensor, position: int,
                 answer: torch.Tensor, read: int = -1) -> torch.Tensor:
    """(n_layers + 1,) share of queries whose top-1 prediction at `read` is no longer `answer` when the
    state after l layers (l = 0: the embedding) at `position` comes from the corrupted run."""
    _check(model)
    bad = residual_stream(model, corrupt)
    flips = []
    with eval_mode(model):
        T = clean.shape[1]
        base = model.embed.W_E[clean] + model.pos_embed.W_pos[:T]
        for layer in range(len(model.layers) + 1):
            resid = base
            for i in range(len(model.layers) + 1):
                if i == layer:
                    resid = resid.clone()
                    resid[:, position] = bad[layer][:, position]
                if i < len(model.layers):
                    resid = model.layers[i](resid, last_only=False)
            pred = decode(model, resid[:, read]).argmax(-1)
            flips.append((pred != answer).double().mean())
    return torch.stack(flips)
