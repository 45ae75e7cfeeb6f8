"""The early-stopping counterfactual follows Keras' and Lightning's rules on planted curves."""

from __future__ import annotations

from grokscope.early_stop import RULES, counterfactual


def _records(losses, accs):
    return [{"step": 10 * i, "test_loss": loss, "test_acc": acc}
            for i, (loss, acc) in enumerate(zip(losses, accs))]


def test_patience_counts_evaluations_without_improvement():
    # step:    0    10   20   30   40   50   60   70   80   90  100  110  120  130
    loss = [9.0, 3.0, 2.0, 2.5, 2.1, 2.2, 2.3, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    acc = [0.0, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.6, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0]
    rows = {r["rule"]: r for r in counterfactual(_records(loss, acc))}
    assert [r[0] for r in RULES] == list(rows)
    # Keras: patience 0, the first non-improving evaluation (2.5 at step 30) stops
    assert (rows["keras_loss"]["stopped_step"], rows["keras_loss"]["kept_acc"]) == (30, 0.2)
    # Lightning: 3 evaluations in a row above the best 2.0 (steps 30, 40, 50)
    assert (rows["lightning_loss"]["stopped_step"], rows["lightning_loss"]["kept_acc"]) == (50, 0.2)
    # accuracy, patience 3: 0.2 at step 20 is not beaten at 30, 40, 50 (ties do not improve)
    assert rows["acc_3"]["stopped_step"] == 50
    # patience 10: accuracy keeps improving until 1.0 at step 90, then 4 ties: never triggers
    assert rows["acc_10"]["stopped_step"] is None and rows["acc_10"]["kept_acc"] is None
    assert rows["keras_loss"]["monitor"] == "test_loss" and rows["acc_3"]["monitor"] == "test_acc"


def test_step_zero_is_not_monitored_and_other_splits_work():
    recs = [{"step": 0, "test_iid_loss": 0.1, "test_iid_acc": 0.0},
            {"step": 5, "test_iid_loss": 5.0, "test_iid_acc": 0.1},
            {"step": 9, "test_iid_loss": 4.0, "test_iid_acc": 0.3}]
    rows = {r["rule"]: r for r in counterfactual(recs, "test_iid")}
    assert rows["keras_loss"]["stopped_step"] is None  # step 0's low loss is not the best to beat
    assert counterfactual([], "test") and all(r["stopped_step"] is None for r in counterfactual([]))


def test_every_run_summary_report_and_show_carry_the_counterfactual(tmp_path, capsys):
    from dataclasses import replace

    from grokscope import train
    from tests.conftest import tiny_grokking_config

    cfg = tiny_grokking_config()
    r = train(replace(cfg, train=replace(cfg.train, steps=300)), tmp_path / "run", progress=False)
    es = r.summary["early_stopping"]
    assert es["split"] == "test" and [x["rule"] for x in es["rules"]] == [x[0] for x in RULES]
    assert es["rules"] == counterfactual(r.metrics, "test")
    steps = {m["step"] for m in r.metrics}
    assert all(x["stopped_step"] is None or x["stopped_step"] in steps for x in es["rules"])
    assert 'id="early-stopping"' in (r.path / "report.html").read_text()
    from grokscope.cli import main

    capsys.readouterr()
    assert main(["show", str(r.path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("early stopping"))
    assert "Keras EarlyStopping defaults" in line and "Lightning" in line
