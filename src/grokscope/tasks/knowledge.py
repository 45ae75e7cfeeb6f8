"""Implicit reasoning over a generated knowledge graph (Wang, Yue, Su & Sun 2024, "Grokked transformers
are implicit reasoners"): `composition` (two-hop queries through a bridge entity) and `comparison`
(which of two entities has the larger attribute value). Generated from the split seed.

composition: entities e_0..e_{N-1} and relations r_0..r_{R-1}; every entity h has `out_degree`
distinct relations, each to a uniformly drawn tail: the atomic facts (h, r) -> t. A share
`ood_fraction` of the atomic facts is OOD: seen in training only as atomic facts. Two-hop queries
(h, r1, r2) -> t go through the bridge b = (h, r1): both hops ID -> `test_iid` (`n_test` of them,
held out) or the training pool; both hops OOD -> `test_ood`; mixed -> unused (as Wang et al.).
Training = every atomic fact + round(phi * |ID atomic facts|) two-hop facts drawn from the pool.

comparison: entities with one value in 0..n_values-1 per attribute; per attribute a share
`ood_fraction` of the entities is OOD (never compared with another OOD entity in training). Queries
(attr, e1, e2) -> '<', '=' or '>' (v1 against v2), both orders of every pair: both entities ID ->
`test_iid` (`n_test`) or the pool; one ID, one OOD -> the pool; both OOD -> `test_ood` (as Wang et
al.'s comparison data). Training = every atomic fact (e, attr) -> value + round(phi * |ID atomic
facts|) queries from the pool.

Examples are causal-LM sequences read as in the paper: atomic `h r` (composition) / `e attr`
(comparison) and queries `h r1 r2` / `attr q e1 mask e2`, right-padded; the model predicts the next
token at every position and the loss and accuracy score only the answer, predicted at the query's
last token (output 'tokens' with a one-position mask). Splits: `train`, `test_iid` (the
generalization split), `test_ood`, and the probes `id_atomic`, `ood_atomic`, `train_inferred`
(up to `n_test` training facts each). `task.meta` holds the vocabulary layout; the analysis
(grokscope.analysis.reasoning) rebuilds the graph from the config to find each query's bridge.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from grokscope.errors import ConfigError
from grokscope.tasks.task import Split, Task, check_generated

__all__ = ["ComparisonOptions", "CompositionOptions", "Graph", "build_comparison", "build_composition",
           "comparison_graph", "composition_graph", "validate_comparison", "validate_composition"]

LABELS = ("<", "=", ">")


@dataclass(frozen=True)
class CompositionOptions:
    n_entities: int = 200
    """Entities (the paper: 2,000)."""
    n_relations: int = 20
    """Relations (the paper: 200)."""
    out_degree: int = 10
    """Distinct relations of every entity (the paper: 20)."""
    ood_fraction: float = 0.05
    """Share of the atomic facts that are OOD (seen only as atomic facts)."""
    phi: float = 7.2
    """Two-hop training facts per ID atomic fact (the paper's inferred/atomic ratio)."""
    n_test: int = 500
    """Size of test_iid (held out of the pool) and the most examples in each other probe split."""


@dataclass(frozen=True)
class ComparisonOptions:
    n_entities: int = 100
    """Entities (the paper: 1,000)."""
    n_attributes: int = 10
    """Attributes (the paper: 20)."""
    n_values: int = 20
    """Values per attribute, ordered (the paper: 20)."""
    ood_fraction: float = 0.1
    """Share of the entities, per attribute, whose value is seen only as an atomic fact."""
    phi: float = 7.2
    """Comparison training queries per ID atomic fact."""
    n_test: int = 500
    """Size of test_iid and the most examples in each other probe split."""


@dataclass
class Graph:
    """A generated knowledge base: the vocabulary and the facts of every split, with their parts.

    tokens: the vocabulary (strings); atomic: {(subject id, relation/attribute id): answer id}; ood:
    the OOD keys of `atomic`; facts[name]: list of (input token ids, answer id); for composition
    `bridge[name]` is each two-hop fact's bridge entity id (None for atomic facts)."""

    kind: str
    tokens: list[str]
    atomic: dict[tuple[int, int], int] = field(default_factory=dict)
    ood: set[tuple[int, int]] = field(default_factory=set)
    facts: dict[str, list[tuple[tuple[int, ...], int]]] = field(default_factory=dict)
    bridge: dict[str, list[int | None]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}


def _check_common(cfg, o, n_min: int) -> None:
    check_generated(cfg, 2, o.n_test)
    if not (isinstance(o.n_entities, int) and o.n_entities >= n_min):
        raise ConfigError(f"task.options.n_entities: must be an integer >= {n_min}, got {o.n_entities!r}")
    if not (0 < o.ood_fraction < 1):
        raise ConfigError(f"task.options.ood_fraction: must be in (0, 1), got {o.ood_fraction!r}")
    if not (isinstance(o.phi, (int, float)) and math.isfinite(o.phi) and o.phi >= 0):
        raise ConfigError(f"task.options.phi: must be a number >= 0, got {o.phi!r}")


def _check_phi(o, pool: int, id_atomic: int) -> int:
    """round(phi * |ID atomic|), or a ConfigError naming the largest phi the graph allows."""
    want = round(o.phi * id_atomic)
    if want > pool:
        top = math.floor(100 * pool / id_atomic) / 100
        raise ConfigError(f"task.options.phi: at most {top} for this graph ({pool} ID two-hop facts outside "
                          f"test_iid, {id_atomic} ID atomic facts), got {o.phi!r}")
    return want


def _probe(rng: random.Random, items: list, n: int) -> list:
    return items if len(items) <= n else rng.sample(items, n)


# ------------------------------------------------------------------------------ composition


def validate_composition(cfg) -> None:
    o = CompositionOptions(**cfg.task.options)
    _check_common(cfg, o, 2)
    if not (isinstance(o.n_relations, int) and o.n_relations >= 1):
        raise ConfigError(f"task.options.n_relations: must be an integer >= 1, got {o.n_relations!r}")
    if not (isinstance(o.out_degree, int) and 1 <= o.out_degree <= o.n_relations):
        raise ConfigError(f"task.options.out_degree: must be an integer in 1..n_relations ({o.n_relations}), "
                          f"got {o.out_degree!r}")
    composition_graph(cfg)  # phi and n_test against the graph's sizes


def composition_graph(cfg) -> Graph:
    """The composition knowledge graph and its splits (see the module docstring)."""
    o = CompositionOptions(**cfg.task.options)
    rng = random.Random(cfg.effective_split_seed)
    N, R = o.n_entities, o.n_relations
    tokens = [f"e{i}" for i in range(N)] + [f"r{j}" for j in range(R)] + ["<pad>"]
    rel = lambda j: N + j
    out: dict[int, dict[int, int]] = {}
    for h in range(N):
        out[h] = {r: rng.randrange(N) for r in rng.sample(range(R), o.out_degree)}
    atomic = [(h, r) for h in range(N) for r in sorted(out[h])]
    n_ood = round(o.ood_fraction * len(atomic))
    ood = set(rng.sample(atomic, n_ood))
    iid, ood_q = [], []
    for h, r1 in atomic:
        b = out[h][r1]
        for r2 in sorted(out[b]):
            hops = ((h, r1) in ood, (b, r2) in ood)
            if not any(hops):
                iid.append((h, r1, r2, b))
            elif all(hops):
                ood_q.append((h, r1, r2, b))
    id_atomic = [a for a in atomic if a not in ood]
    if len(iid) <= o.n_test:
        raise ConfigError(f"task.options.n_test: must be below the {len(iid)} ID two-hop facts of this "
                          f"graph, got {o.n_test!r}")
    rng.shuffle(iid)
    test_iid, pool = iid[: o.n_test], iid[o.n_test:]
    train_inferred = rng.sample(pool, _check_phi(o, len(pool), len(id_atomic)))
    fact = lambda h, r: ((h, rel(r)), out[h][r])
    two = lambda q: ((q[0], rel(q[1]), rel(q[2])), out[q[3]][q[2]])
    g = Graph("composition", tokens, atomic={(h, rel(r)): t for h in out for r, t in out[h].items()},
              ood={(h, rel(r)) for h, r in ood})
    g.facts["train"] = [fact(h, r) for h, r in atomic] + [two(q) for q in train_inferred]
    g.bridge["train"] = [None] * len(atomic) + [q[3] for q in train_inferred]
    for name, qs in (("test_iid", test_iid), ("test_ood", _probe(rng, ood_q, o.n_test)),
                     ("train_inferred", _probe(rng, train_inferred, o.n_test))):
        g.facts[name], g.bridge[name] = [two(q) for q in qs], [q[3] for q in qs]
    for name, facts in (("id_atomic", _probe(rng, id_atomic, o.n_test)),
                        ("ood_atomic", _probe(rng, sorted(ood), o.n_test))):
        g.facts[name], g.bridge[name] = [fact(h, r) for h, r in facts], [None] * len(facts)
    g.counts = {"atomic": len(atomic), "id_atomic": len(id_atomic), "ood_atomic": n_ood,
                "id_inferred": len(iid), "ood_inferred": len(ood_q), "train_inferred": len(train_inferred),
                "max_phi": math.floor(100 * len(pool) / len(id_atomic)) / 100}
    return g


# ------------------------------------------------------------------------------ comparison


def validate_comparison(cfg) -> None:
    o = ComparisonOptions(**cfg.task.options)
    _check_common(cfg, o, 4)
    for name, least in (("n_attributes", 1), ("n_values", 2)):
        v = getattr(o, name)
        if not (isinstance(v, int) and v >= least):
            raise ConfigError(f"task.options.{name}: must be an integer >= {least}, got {v!r}")
    comparison_graph(cfg)


def comparison_graph(cfg) -> Graph:
    """The comparison knowledge base and its splits (see the module docstring)."""
    o = ComparisonOptions(**cfg.task.options)
    rng = random.Random(cfg.effective_split_seed)
    N, A, V = o.n_entities, o.n_attributes, o.n_values
    tokens = ([f"e{i}" for i in range(N)] + [f"a{j}" for j in range(A)] + [f"v{k}" for k in range(V)]
              + list(LABELS) + ["<q>", "<mask>", "<pad>"])
    ix = {t: i for i, t in enumerate(tokens)}
    value = [[rng.randrange(V) for _ in range(A)] for _ in range(N)]
    n_ood = max(1, round(o.ood_fraction * N))
    ood = {a: set(rng.sample(range(N), n_ood)) for a in range(A)}
    atomic = [(e, a) for e in range(N) for a in range(A)]
    id_atomic = [(e, a) for e, a in atomic if e not in ood[a]]
    iid, mixed, ood_q = [], [], []
    for a in range(A):
        for e1 in range(N):
            for e2 in range(e1 + 1, N):
                n_ood = (e1 in ood[a]) + (e2 in ood[a])
                # both orders of a pair go to the same split
                (iid, mixed, ood_q)[n_ood].append([(a, e1, e2), (a, e2, e1)])
    if len(iid) <= o.n_test // 2:
        raise ConfigError(f"task.options.n_test: must be below the {2 * len(iid)} ID comparisons of this "
                          f"knowledge base, got {o.n_test!r}")
    rng.shuffle(iid)
    held = o.n_test // 2
    test_iid = [q for pair in iid[:held] for q in pair]
    pool = [q for pair in iid[held:] + mixed for q in pair]  # ID-OOD pairs can be trained on (as the paper)
    train_q = rng.sample(pool, _check_phi(o, len(pool), len(id_atomic)))
    label = lambda v1, v2: ix[LABELS[(v1 > v2) - (v1 < v2) + 1]]
    fact = lambda e, a: ((e, ix[f"a{a}"]), ix[f"v{value[e][a]}"])
    query = lambda q: ((ix[f"a{q[0]}"], ix["<q>"], q[1], ix["<mask>"], q[2]),
                       label(value[q[1]][q[0]], value[q[2]][q[0]]))
    g = Graph("comparison", tokens, atomic={fact(e, a)[0]: fact(e, a)[1] for e, a in atomic},
              ood={fact(e, a)[0] for e, a in atomic if e in ood[a]})
    g.facts["train"] = [fact(e, a) for e, a in atomic] + [query(q) for q in train_q]
    ood_all = [q for pair in ood_q for q in pair]
    for name, qs in (("test_iid", test_iid), ("test_ood", _probe(rng, ood_all, o.n_test)),
                     ("train_inferred", _probe(rng, train_q, o.n_test))):
        g.facts[name] = [query(q) for q in qs]
    ood_atomic = [(e, a) for e, a in atomic if e in ood[a]]
    for name, facts in (("id_atomic", _probe(rng, id_atomic, o.n_test)),
                        ("ood_atomic", _probe(rng, ood_atomic, o.n_test))):
        g.facts[name] = [fact(e, a) for e, a in facts]
    g.counts = {"atomic": len(atomic), "id_atomic": len(id_atomic), "ood_atomic": len(ood_atomic),
                "id_inferred": 2 * len(iid), "ood_inferred": len(ood_all), "train_inferred": len(train_q),
                "max_phi": math.floor(100 * len(pool) / len(id_atomic)) / 100}
    return g


# ------------------------------------------------------------------------------ the task


def _encode(facts: list[tuple[tuple[int, ...], int]], length: int, pad: int) -> Split:
    """Right-padded inputs (n, length); next-token targets with the answer after the last input token,
    scored there only."""
    n = len(facts)
    inputs = torch.full((n, length), pad, dtype=torch.long)
    targets = torch.full((n, length), pad, dtype=torch.long)
    mask = torch.zeros(n, length, dtype=torch.bool)
    for i, (x, y) in enumerate(facts):
        inputs[i, :len(x)] = torch.tensor(x)
        targets[i, :len(x) - 1] = torch.tensor(x[1:])
        targets[i, len(x) - 1] = y
        mask[i, len(x) - 1] = True
    return Split(inputs, targets, mask)


SPLITS = ("train", "test_iid", "test_ood", "id_atomic", "ood_atomic", "train_inferred")


def _task(g: Graph, length: int, phi: float) -> Task:
    pad = len(g.tokens) - 1
    splits = {name: _encode(g.facts[name], length, pad) for name in SPLITS if g.facts.get(name)}
    meta = {"kind": g.kind, "vocab": g.tokens, **g.counts, "phi": phi}
    return Task(kind=g.kind, splits=splits, input_kind="tokens", input_shape=(length,),
                n_classes=len(g.tokens), vocab_size=len(g.tokens), output="tokens",
                generalization_split="test_iid", meta=meta)


def build_composition(cfg) -> Task:
    return _task(composition_graph(cfg), 3, CompositionOptions(**cfg.task.options).phi)


def build_comparison(cfg) -> Task:
    return _task(comparison_graph(cfg), 5, ComparisonOptions(**cfg.task.options).phi)
