"""Knowledge-graph tasks (Wang et al. 2024): the generators' facts, ID/OOD membership, phi, the splits."""

from __future__ import annotations

import re

import pytest

from grokscope import RunConfig, TaskConfig
from grokscope.config import validate
from grokscope.errors import ConfigError
from grokscope.tasks import task_from_config
from grokscope.tasks.knowledge import LABELS, comparison_graph, composition_graph


def _cfg(kind, **options):
    return validate(RunConfig(task=TaskConfig(kind=kind, options=options)))


SMALL = {"n_entities": 60, "n_relations": 8, "out_degree": 4, "n_test": 50, "phi": 2.0, "ood_fraction": 0.2}


def test_two_hop_answers_compose_atomic_facts_and_splits_respect_id_and_ood():
    g = composition_graph(_cfg("composition", **SMALL))
    atomic, ood = g.atomic, g.ood
    assert len(atomic) == 60 * 4 and len(ood) == round(0.2 * 240)
    train = set(g.facts["train"])
    assert {((h, r), t) for (h, r), t in atomic.items()} <= train  # every atomic fact is trained on
    for name in ("train", "test_iid", "test_ood", "train_inferred"):
        for (x, y), b in zip(g.facts[name], g.bridge[name]):
            if len(x) == 2:
                continue
            h, r1, r2 = x
            assert atomic[(h, r1)] == b and atomic[(b, r2)] == y  # the answer composes the two hops
            hops = {(h, r1) in ood, (b, r2) in ood}
            assert hops == ({True} if name == "test_ood" else {False})
    queries = lambda name: {x for x, _ in g.facts[name]}
    assert not queries("test_iid") & queries("train") and not queries("test_ood") & queries("train")
    assert queries("train_inferred") <= queries("train")
    assert len(g.facts["test_iid"]) == 50 and g.facts["test_ood"]
    assert {x for x, _ in g.facts["ood_atomic"]} <= ood and not {x for x, _ in g.facts["id_atomic"]} & ood


def test_phi_sets_the_number_of_two_hop_training_facts_and_its_maximum_is_one_line():
    for phi in (0.5, 1.0, 2.5):
        g = composition_graph(_cfg("composition", **{**SMALL, "phi": phi}))
        two_hop = sum(len(x) == 3 for x, _ in g.facts["train"])
        assert two_hop == round(phi * g.counts["id_atomic"]) == g.counts["train_inferred"]
    top = composition_graph(_cfg("composition", **SMALL)).counts["max_phi"]
    message = re.escape(f"task.options.phi: at most {top} for this graph")
    with pytest.raises(ConfigError, match="^" + message + r" \(\d+ ID two-hop facts outside test_iid, \d+ ID "
                                                           r"atomic facts\), got 99.0$"):
        _cfg("composition", **{**SMALL, "phi": 99.0})


def test_comparison_labels_agree_with_attribute_values_and_ood_pairs_stay_out_of_training():
    o = {"n_entities": 30, "n_attributes": 3, "n_values": 5, "n_test": 40, "phi": 2.0}
    g = comparison_graph(_cfg("comparison", **o))
    tok = g.tokens
    for name in ("train", "test_iid", "test_ood", "train_inferred"):
        for x, y in g.facts[name]:
            if len(x) == 2:
                continue
            a, _, e1, _, e2 = x
            v1, v2 = (int(tok[g.atomic[(e, a)]][1:]) for e in (e1, e2))
            assert tok[y] == LABELS[(v1 > v2) - (v1 < v2) + 1]
            n_ood = ((e1, a) in g.ood) + ((e2, a) in g.ood)
            assert n_ood == 2 if name == "test_ood" else n_ood == 0 if name == "test_iid" else n_ood < 2
    queries = lambda name: {x for x, _ in g.facts[name]}
    assert not queries("test_iid") & queries("train")
    # ID-OOD pairs are trained on (the OOD entities' values are compared to ID ones), OOD-OOD never
    mixed = [x for x in queries("train")
             if len(x) == 5 and ((x[2], x[0]) in g.ood) != ((x[4], x[0]) in g.ood)]
    assert mixed
    assert sum(len(x) == 5 for x, _ in g.facts["train"]) == round(2.0 * g.counts["id_atomic"])


def test_tasks_score_the_answer_at_the_query_last_token():
    t = task_from_config(_cfg("composition", **SMALL))
    assert t.generalization_split == "test_iid" and t.output == "tokens"
    assert set(t.splits) == {"train", "test_iid", "test_ood", "id_atomic", "ood_atomic", "train_inferred"}
    s = t.splits["test_iid"]
    assert (s.mask.sum(1) == 1).all() and s.mask[:, 2].all()  # h r1 r2: the answer after r2
    a = t.splits["id_atomic"]
    assert a.mask[:, 1].all() and (a.inputs[:, 2] == t.vocab_size - 1).all()  # h r <pad>
    c = task_from_config(_cfg("comparison", n_entities=30, n_attributes=3, n_test=40, phi=2.0))
    assert c.splits["test_iid"].mask[:, 4].all() and c.splits["id_atomic"].mask[:, 1].all()


def test_bad_knowledge_options_are_one_line():
    message = r"^task.options.out_degree: must be an integer in 1..n_relations \(8\), got 9$"
    with pytest.raises(ConfigError, match=message):
        _cfg("composition", **{**SMALL, "out_degree": 9})
    with pytest.raises(ConfigError, match=r"^task.options.ood_fraction: must be in \(0, 1\), got 1.0$"):
        _cfg("comparison", ood_fraction=1.0)
