"""Decoder-only transformer with TransformerLens weight and hook names, over any token sequence.

Input tokens (batch, pos); the answer is read at the task's answer position (classes, regression)
or at every position (token outputs, causal). Attention is written with explicit matmuls (no SDPA).
When the answer is at the last position, the last block computes only that position's query,
attention output, MLP and unembedding (keys and values still use every position): for a 4-token
input this skips ~3/4 of the last block's work and gives the same logits. For an answer at another
position every position is computed and the answer's logits are selected.

Hook shapes follow TransformerLens: hook_q / hook_k / hook_v / hook_z are (batch, pos, head, d_head),
hook_attn_scores / hook_pattern (batch, head, q_pos, k_pos), block hooks (batch, pos, d_model).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from grokscope.models.hooks import HookedModule, HookPoint
from grokscope.models.layers import LayerNorm, activation_fn, param

__all__ = ["Attention", "Block", "Embed", "MLPBlock", "PosEmbed", "Transformer", "Unembed"]

_TABLE_ROWS = 1 << 16
"""The fast path's (token, position) table is used while it has at most max(this, batch * pos) rows."""


def _hooked(hook: HookPoint, t: torch.Tensor) -> torch.Tensor:
    """Pass t (batch, head, pos, e) through `hook` in TransformerLens' shape (batch, pos, head, e).

    Without a hook attached the point is the identity and t is returned as it is: the attention's
    math (and its speed) are those of a model without hook points.
    """
    if not (hook._forward_hooks or hook._forward_pre_hooks):
        return t
    return hook(t.transpose(1, 2)).transpose(1, 2)


class Attention(HookedModule):
    def __init__(self, d_model: int, n_heads: int, bias: bool, std: float):
        super().__init__()
        d_head = d_model // n_heads
        self.n_heads, self.d_head = n_heads, d_head
        self.W_Q = param(n_heads, d_model, d_head, std=std)  # (head, d_model, d_head)
        self.W_K = param(n_heads, d_model, d_head, std=std)
        self.W_V = param(n_heads, d_model, d_head, std=std)
        self.W_O = param(n_heads, d_head, d_model, std=std)  # (head, d_head, d_model)
        if bias:
            self.b_Q = param(n_heads, d_head, std=0)
            self.b_K = param(n_heads, d_head, std=0)
            self.b_V = param(n_heads, d_head, std=0)
            self.b_O = param(d_model, std=0)
        else:
            self.b_Q = self.b_K = self.b_V = self.b_O = None
        for name in ("q", "k", "v", "attn_scores", "pattern", "z"):
            setattr(self, f"hook_{name}", HookPoint())

    def _project(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """x (batch, pos, d_model), W (head, d_model, e), b (head, e) -> (batch, head, pos, e)."""
        B, T, D = x.shape
        H, _, E = W.shape
        W2 = W.permute(1, 0, 2).reshape(D, H * E)  # (d_model, head*e)
        # (batch, pos, head*e) or, with the bias fused, (batch*pos, head*e)
        out = x @ W2 if b is None else torch.addmm(b.reshape(-1), x.reshape(B * T, D), W2)
        return out.reshape(B, T, H, E).transpose(1, 2)  # (batch, head, pos, e)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor, causal: bool,
                q_index: torch.Tensor | None = None, kv_index: torch.Tensor | None = None) -> torch.Tensor:
        """x_q: (batch, q_pos, d_model) queries; x_kv: (batch, pos, d_model). Returns (batch, q_pos, d_model).

        With q_index (batch, q_pos) and kv_index (batch, pos), x_q and x_kv are instead tables
        (1, rows, d_model) of the distinct inputs; q, k, v are projected once per row and gathered.
        The hooks hook_q/k/v/z see TransformerLens' (batch, pos, head, d_head); the math runs on
        (batch, head, pos, d_head).
        """
        q = self._project(x_q, self.W_Q, self.b_Q)  # (batch, head, q_pos, d_head)
        k, v = self._project(x_kv, torch.cat([self.W_K, self.W_V], dim=-1),  # one matmul for K and V
                             None if self.b_K is None else torch.cat([self.b_K, self.b_V], dim=-1)
                             ).split(self.d_head, dim=-1)  # each (batch, head, pos, d_head)
        if q_index is not None:
            # (1, head, rows, d_head)[0][:, index] -> (head, batch, pos, d_head) -> (batch, head, pos, d_head)
            q, k, v = (q[0][:, q_index].transpose(0, 1), k[0][:, kv_index].transpose(0, 1),
                       v[0][:, kv_index].transpose(0, 1))
        q = _hooked(self.hook_q, q)  # (batch, head, q_pos, d_head)
        k = _hooked(self.hook_k, k)  # (batch, head, pos, d_head)
        v = _hooked(self.hook_v, v)  # (batch, head, pos, d_head)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)  # (batch, head, q_pos, pos)
        if causal and q.shape[2] > 1:
            T = k.shape[2]
            mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)[-q.shape[2]:]  # (q_pos, pos)
            scores = scores.masked_fill(mask, float("-inf"))
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(scores.softmax(dim=-1))  # (batch, head, q_pos, pos)
        z = _hooked(self.hook_z, pattern @ v)  # (batch, head, q_pos, d_head)
        B, H, Tq, Dh = z.shape
        z = z.transpose(1, 2).reshape(B * Tq, H * Dh)  # (batch*q_pos, head*d_head)
        W_O = self.W_O.reshape(H * Dh, -1)  # (head*d_head, d_model)
        out = z @ W_O if self.b_O is None else torch.addmm(self.b_O, z, W_O)  # (batch*q_pos, d_model)
        return out.reshape(B, Tq, -1)  # (batch, q_pos, d_model)


class MLPBlock(HookedModule):
    def __init__(self, d_model: int, d_mlp: int, act: str, bias: bool, std_in: float, std_out: float):
        super().__init__()
        self.W_in = param(d_model, d_mlp, std=std_in)  # (d_model, d_mlp)
        self.W_out = param(d_mlp, d_model, std=std_out)  # (d_mlp, d_model)
        self.b_in = param(d_mlp, std=0) if bias else None
        self.b_out = param(d_model, std=0) if bias else None
        self.act = activation_fn(act)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, pos, d_model) -> (batch, pos, d_model)."""
        pre = x @ self.W_in if self.b_in is None else x @ self.W_in + self.b_in  # (batch, pos, d_mlp)
        post = self.hook_post(self.act(self.hook_pre(pre)))
        return post @ self.W_out if self.b_out is None else post @ self.W_out + self.b_out


class Block(HookedModule):
    def __init__(self, cfg, std: float):
        super().__init__()
        self.norm = cfg.norm
        self.dropout_p = cfg.dropout  # mutable: dropout schedules change it during training
        if cfg.norm != "none":
            self.ln1 = LayerNorm(cfg.d_model)
            self.ln2 = LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.bias, std)
        self.mlp = MLPBlock(cfg.d_model, cfg.d_mlp, cfg.activation, cfg.bias, std,
                            cfg.init_scale / math.sqrt(cfg.d_mlp))
        for name in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"):
            setattr(self, f"hook_{name}", HookPoint())

    def forward(self, resid: torch.Tensor, last_only: bool, table: torch.Tensor | None = None,
                index: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, pos, d_model) -> (batch, pos or 1, d_model); last_only keeps only the final position.

        If `table` (rows, d_model) and `index` (batch, pos) are given, resid == table[index] and the
        attention projections are computed once per table row (see Transformer.forward).
        """
        resid = self.hook_resid_pre(resid)
        if table is None:
            x = self.ln1(resid) if self.norm == "pre" else resid
            attn = self.attn(x[:, -1:] if last_only else x, x, causal=True)
        else:
            x = (self.ln1(table) if self.norm == "pre" else table)[None]  # (1, rows, d_model)
            attn = self.attn(x, x, causal=True, q_index=index[:, -1:] if last_only else index,
                             kv_index=index)
        resid = resid[:, -1:] if last_only else resid
        attn = self.hook_attn_out(F.dropout(attn, self.dropout_p, self.training))
        resid = resid + attn
        if self.norm == "post":
            resid = self.ln1(resid)
        resid = self.hook_resid_mid(resid)
        x = self.ln2(resid) if self.norm == "pre" else resid
        mlp = self.hook_mlp_out(F.dropout(self.mlp(x), self.dropout_p, self.training))
        resid = resid + mlp
        if self.norm == "post":
            resid = self.ln2(resid)
        return self.hook_resid_post(resid)


class Embed(nn.Module):
    def __init__(self, d_vocab: int, d_model: int, std: float):
        super().__init__()
        self.W_E = param(d_vocab, d_model, std=std)  # (d_vocab, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.W_E[tokens]  # (batch, pos, d_model)


class PosEmbed(nn.Module):
    def __init__(self, n_ctx: int, d_model: int, std: float):
        super().__init__()
        self.W_pos = param(n_ctx, d_model, std=std)  # (n_ctx, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.W_pos[: tokens.shape[1]]  # (pos, d_model)


class Unembed(nn.Module):
    def __init__(self, d_model: int, d_vocab_out: int, bias: bool, std: float):
        super().__init__()
        self.W_U = param(d_model, d_vocab_out, std=std)  # (d_model, d_vocab_out)
        self.b_U = param(d_vocab_out, std=0) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W_U if self.b_U is None else x @ self.W_U + self.b_U


class Transformer(HookedModule):
    """Decoder-only transformer over token sequences of up to n_ctx tokens from a d_vocab vocabulary.

    forward(tokens (batch, pos)) -> logits (batch, d_vocab_out) read at `answer_position` (output
    'classes' / 'regression'), or (batch, pos, d_vocab_out) at every position (output 'tokens', or
    all_positions=True). Weights are initialised N(0, init_scale²/fan_in) (fan_in = d_model, or
    d_mlp for W_out), biases and LayerNorm shifts at zero.
    """

    def __init__(self, cfg, d_vocab: int, d_vocab_out: int, n_ctx: int = 4, *, answer_position: int = -1,
                 output: str = "classes"):
        super().__init__()
        self.cfg = cfg
        self.dropout_p = cfg.dropout  # mutable: dropout schedules change it during training
        self.answer_position, self.output = answer_position, output
        std = cfg.init_scale / math.sqrt(cfg.d_model)
        self.embed = Embed(d_vocab, cfg.d_model, std)
        self.pos_embed = PosEmbed(n_ctx, cfg.d_model, std)
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        n_blocks = cfg.n_layers // 2 if getattr(cfg, "share_layers", False) else cfg.n_layers
        self.blocks = nn.ModuleList(Block(cfg, std) for _ in range(n_blocks))
        # layer i runs blocks[i % n_blocks]: with share_layers the first half's blocks run twice
        self.layers = [self.blocks[i % n_blocks] for i in range(cfg.n_layers)]
        if cfg.norm == "pre":
            self.ln_final = LayerNorm(cfg.d_model)
        self.unembed = Unembed(cfg.d_model, d_vocab_out, cfg.bias, std)

    def _hooks_attached(self) -> bool:
        """Whether a hook is attached where the fast path would skip it or ignore its edits.

        The fast path never calls hook_embed / hook_pos_embed, and block 0 attends from the
        (token, position) table, so an edit made by blocks.0.hook_resid_pre would not reach its
        attention. Every other hook point runs on the same tensors in both paths.
        """
        if not hasattr(self, "_hook_list"):
            self._hook_list = [self.hook_embed, self.hook_pos_embed, self.blocks[0].hook_resid_pre]
        return any(h._forward_hooks or h._forward_pre_hooks for h in self._hook_list)

    def forward(self, tokens: torch.Tensor, all_positions: bool = False) -> torch.Tensor:
        """tokens (batch, pos) -> logits (batch, d_vocab_out) at the answer position, or
        (batch, pos, d_vocab_out) if all_positions or the output is 'tokens'.

        Fast path (no hooks attached, no embedding dropout): the first block's input depends only
        on (token, position), so its attention projections are computed once per possible pair
        (d_vocab * pos rows) and gathered, instead of once per batch row. Same math. (Skipped when
        that table would be larger than both the batch and _TABLE_ROWS rows.)
        """
        B, T = tokens.shape
        every = all_positions or self.output == "tokens"
        answer = self.answer_position % T
        last_only = not every and answer == T - 1  # the last block computes only the answer position
        last = len(self.layers) - 1
        table = index = None
        d_vocab = self.embed.W_E.shape[0]
        if ((self.dropout_p == 0 or not self.training) and not self._hooks_attached()
                and d_vocab * T <= max(B * T, _TABLE_ROWS)):
            # (d_vocab, 1, d_model) + (1, pos, d_model) -> (d_vocab*pos, d_model)
            table = (self.embed.W_E[:, None] + self.pos_embed.W_pos[None, :T]).reshape(-1, self.cfg.d_model)
            index = tokens * T + torch.arange(T, device=tokens.device)  # (batch, pos) rows of table
            resid = table[index]  # (batch, pos, d_model)
        else:
            resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens))
            resid = F.dropout(resid, self.dropout_p, self.training)  # (batch, pos, d_model)
        for i, block in enumerate(self.layers):
            resid = block(resid, last_only=(i == last and last_only),
                          table=table if i == 0 else None, index=index)
        if self.cfg.norm == "pre":
            resid = self.ln_final(resid)
        logits = self.unembed(resid)  # (batch, pos or 1, d_vocab_out)
        if every:
            return logits  # (batch, pos, d_vocab_out)
        return logits[:, -1] if last_only else logits[:, answer]  # (batch, d_vocab_out)
