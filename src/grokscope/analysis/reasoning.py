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


# ------------------------------------------------------------------------------ the run analysis

N_PROBE = 300  # training two-hop queries probed per checkpoint (Wang et al.: 300)
TOP1 = "top-1"


def composition_probes(cfg, n: int = N_PROBE, seed: int = 0) -> dict:
    """Training two-hop queries of a composition run with their bridges and one corruption of each
    token (Wang et al.: a token of the same type for which the answer changes): {"clean" (n, 3),
    "answer", "bridge", "r2", "corrupt": {"h"|"r1"|"r2": (n, 3)}}."""
    import random

    from grokscope.tasks.knowledge import composition_graph

    g = composition_graph(cfg)
    rng = random.Random(seed)
    pairs = [(x, y, b) for (x, y), b in zip(g.facts["train"], g.bridge["train"]) if b is not None]
    pairs = pairs if len(pairs) <= n else rng.sample(pairs, n)
    heads = sorted({h for h, _ in g.atomic})
    rels_of: dict[int, list[int]] = {}
    for h, r in g.atomic:
        rels_of.setdefault(h, []).append(r)
    two_hop = lambda h, r1, r2: g.atomic.get((g.atomic.get((h, r1), -1), r2))
    clean, answer, bridge, corrupt = [], [], [], {"h": [], "r1": [], "r2": []}
    for (h, r1, r2), t, b in pairs:
        h2 = rng.choice([e for e in heads if e != h and two_hop(e, r1, r2) != t])
        r1s = [r for r in rels_of[h] if r != r1 and two_hop(h, r, r2) != t] or [r1]
        r2s = [r for r in rels_of[b] if r != r2 and g.atomic[(b, r)] != t] or [r2]
        clean.append((h, r1, r2))
        answer.append(t)
        bridge.append(b)
        corrupt["h"].append((h2, r1, r2))
        corrupt["r1"].append((h, rng.choice(r1s), r2))
        corrupt["r2"].append((h, r1, rng.choice(r2s)))
    t = lambda rows: torch.tensor(rows, dtype=torch.long)
    return {"clean": t(clean), "answer": t(answer), "bridge": t(bridge), "r2": t(clean)[:, 2],
            "corrupt": {k: t(v) for k, v in corrupt.items()}}


POSITIONS = {"h": 0, "r1": 1, "r2": 2}


def probe_checkpoint(model, probes: dict) -> dict:
    """One checkpoint's lens and tracing numbers: per layer (embedding = 0), the bridge's MRR and
    top-1 share at position r1, r2's at position r2, and the flip share when h, r1 or r2 is
    corrupted at that layer (each at its own position)."""
    states = residual_stream(model, probes["clean"])
    b_ranks = logit_lens_ranks(model, states, POSITIONS["r1"], probes["bridge"])
    r2_ranks = logit_lens_ranks(model, states, POSITIONS["r2"], probes["r2"])
    rec = {"bridge_mrr": mrr(b_ranks).tolist(), "bridge_top1": (b_ranks == 0).double().mean(-1).tolist(),
           "r2_mrr": mrr(r2_ranks).tolist()}
    for name, pos in POSITIONS.items():
        rec[f"trace_{name}"] = causal_trace(model, probes["clean"], probes["corrupt"][name], pos,
                                            probes["answer"]).tolist()
    return rec


def reasoning_card(records: list[dict], key_steps: dict, gen: str) -> dict:
    """The circuit statement: the layer where the bridge entity is decoded most often at position r1
    at the end, and how often it is there at memorization; the tracing of r1 at that layer."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
    at = {label: next((r for r in records if s is not None and r["step"] == s), None)
          for label, s in key_steps.items()}
    final = records[-1]
    # inner layers only: the last state at position r1 is the model's own prediction there, which the
    # atomic facts (h, r) -> t train to be the bridge (Wang et al. lens layers 1..7 of 8)
    inner = range(1, max(2, len(final["bridge_top1"]) - 1))
    layer = max(inner, key=lambda i: final["bridge_top1"][i])
    before = at.get("memorized")
    share = final["bridge_top1"][layer]
    evidence = [f"At step {final['step']:,}: train accuracy {pct(final.get('train_acc'))}, {gen} "
                f"{pct(final.get(f'{gen}_acc'))}, test_ood {pct(final.get('test_ood_acc'))}."]
    line = (f"Logit lens on {N_PROBE} training two-hop queries: the bridge entity is the top-1 decoding of "
            f"the state after layer {layer} at position r1 in {pct(share)} of them at step {final['step']:,}")
    if before is not None and before is not final:
        line += f", {pct(before['bridge_top1'][layer])} at memorization (step {before['step']:,})"
    evidence.append(line + ".")
    r2_layer = max(inner, key=lambda i: final["r2_mrr"][i])
    evidence.append(f"r2 at position r2: MRR {final['r2_mrr'][r2_layer]:.2f} after layer {r2_layer} at the "
                    "end.")
    trace = final["trace_r1"][layer]
    line = (f"Causal tracing: corrupting r1 in the state after layer {layer} at position r1 changes the "
            f"answer of {pct(trace)} of the queries at the end")
    if before is not None and before is not final:
        line += f", {pct(before['trace_r1'][layer])} at memorization"
    evidence.append(line + "; corrupting h there: "
                    f"{pct(final['trace_h'][layer])}, corrupting r2 at position r2: "
                    f"{pct(final['trace_r2'][layer])}.")
    found = share >= 0.5
    grokked = key_steps.get("generalized") is not None
    headline = (f"Bridge entity decoded at layer {layer} at position r1 in {pct(share)} of training two-hop "
                f"queries {'after grokking' if grokked else 'at the end'}")
    if before is not None and before is not final:
        headline += f", {pct(before['bridge_top1'][layer])} {'before' if grokked else 'at memorization'}"
    headline += "."
    return {"claim": "two-hop circuit" if found else "none", "circuit": "found" if found else "not found",
            "headline": headline, "evidence": evidence, "layer": layer}


def analyze_reasoning(rd, cfg, task, ckpts: list, t0: float, *, figures: bool, report: bool) -> dict:
    """`grokscope analyze` on a composition run: the accuracies, logit lens and causal tracing at every
    checkpoint, their figures and the circuit card; writes analysis.jsonl and analysis.json."""
    from grokscope.analysis.driver import finish, key_checkpoints, readable_states
    from grokscope.errors import ConfigError
    from grokscope.models import build_model
    from grokscope.training.losses import per_example_correct

    if task.kind != "composition":
        raise ConfigError(f"run: the mechanism analysis covers composition runs, not {task.kind!r} yet")
    if cfg.model.arch != "transformer" or cfg.model.norm != "pre":
        raise ConfigError("model.norm: the logit lens needs a pre-LN transformer (model.norm 'pre')")
    probes = composition_probes(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, task).eval()
    summary = rd.read_summary() if rd.summary.is_file() else {}
    gen = summary.get("generalization_split", task.generalization_split)
    records = []
    with torch.no_grad():
        for step, state in readable_states(ckpts):
            model.load_state_dict(state)
            rec: dict = {"step": step}
            for name, s in task.splits.items():
                right = per_example_correct(model(s.inputs), s.targets, "tokens", s.mask)
                rec[f"{name}_acc"] = float(right.double().mean())
            rec.update(probe_checkpoint(model, probes))
            records.append(rec)
    _, phase, key_steps = key_checkpoints(rd, records, summary, gen)
    steps = [r["step"] for r in records]
    card = reasoning_card(records, key_steps, gen)
    out = {"format_version": 1, "kind": "reasoning", "steps": steps, "key_freqs": [], "key_source": "none",
           "fourier_task": False, "final": records[-1],
           "details": {"key_steps": key_steps, "probes": N_PROBE},
           "card": card, "figures": [], "seconds": None}
    if figures:
        from grokscope.report import reasoning_plots

        out["figures"] = reasoning_plots.draw_all(rd.figures, records=records, phase=phase, gen=gen,
                                                  layer=card["layer"])
    return finish(rd, out, records, t0, report)
