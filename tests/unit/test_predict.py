"""Early warning (grokscope.predict): features from curves, the fitted classifier and step regressor,
the held-out evaluation, the model file (plain JSON, checked), and the CLI, on planted runs."""

from __future__ import annotations

import json
import math
import random

import pytest

from grokscope.cli import main
from grokscope.errors import ConfigError
from grokscope.predict import (
    FEATURES,
    evaluate,
    features,
    fit,
    live_text,
    load_model,
    predict_records,
    roc_auc,
    run_examples,
)

BUDGET = 4000


def planted(grok_at: int | None, seed: int, shrink: float | None = None) -> list[dict]:
    """A run that memorizes at step 100 and, when `grok_at`, generalizes there; its weight norm
    shrinks at a rate that sets the step (as weight decay does), with noise."""
    rng = random.Random(seed)
    shrink = shrink if shrink is not None else (3.0 / grok_at if grok_at else 0.0)
    recs = []
    for step in range(0, BUDGET + 1, 50):
        gen = 0.05 + 0.94 / (1 + math.exp(-(step - grok_at) / 60)) if grok_at else 0.05 + 0.02 * rng.random()
        recs.append({"step": step, "train_acc": min(1.0, 0.05 + step / 100),
                     "train_loss": 3.0 * math.exp(-step / 200) + 1e-3 * (1 + rng.random()),
                     "test_acc": min(1.0, gen + 0.01 * rng.random()),
                     "test_loss": 3.0 * (1.05 - gen), "weight_norm": 30 * math.exp(-shrink * step / 4)
                     * (1 + 0.01 * rng.random())})
    return recs


def _examples(seeds, cutoffs=(0.1, 0.25, 0.5)):
    out = []
    for s in seeds:
        rng = random.Random(s)
        grok = rng.random() < 0.5
        at = rng.randint(1200, 3800) if grok else None
        recs = planted(at, s, shrink=None if grok else 0.1 / BUDGET)
        gen = next((r["step"] for r in recs if r["test_acc"] >= 0.99), None)
        for c in cutoffs:
            t = int(c * BUDGET)
            out.append({"run": f"r{s}", "cutoff": c, "x": features(recs, BUDGET, t),
                        "grokked": gen is not None, "step": gen, "budget": BUDGET,
                        "before": gen is not None and gen <= t})
    return out


def test_features_read_the_curves_up_to_the_step():
    recs = planted(2000, 0)
    x = features(recs, BUDGET, 1000)
    assert set(x) == set(FEATURES) and x["progress"] == 0.25
    assert x["memorized"] == 1.0 and x["memorized_at"] == 100 / BUDGET and x["train_acc"] == 1.0
    assert x["gen_acc"] < 0.1 and x["norm_ratio"] < -0.3 and x["norm_trend"] < 0
    late = features(recs, BUDGET, 2500)
    assert late["gen_acc"] > 0.9 and late["gen_rise"] > 0.8
    assert features(recs + [{"step": 9999, "test_acc": 1.0}], BUDGET, 1000) == x  # later records unseen
    with pytest.raises(ConfigError, match="need 2"):
        features(recs, BUDGET, 0)


def test_the_fitted_model_separates_held_out_runs_and_dates_them():
    train, held = _examples(range(60)), _examples(range(100, 160))
    model = fit(train, source="planted")
    rows = evaluate(model, held, train_examples=train)
    at25 = next(r for r in rows if r["cutoff"] == 0.25)
    assert at25["n"] > 40 and 0 < at25["generalize"] < at25["n"]
    assert at25["auc"] > 0.9 and at25["accuracy"] > at25["majority_accuracy"]
    assert at25["step_error"] < at25["step_error_baseline"]  # the norm's rate dates the jump
    assert at25["brier"] < at25["brier_baseline"]
    json.dumps(model)  # plain JSON


def test_a_run_that_generalized_already_is_answered_from_its_curve():
    model = fit(_examples(range(40)))
    f = predict_records(model, planted(1500, 1), BUDGET)
    assert f["already"] and f["p_generalize"] == 1.0 and 1500 <= f["predicted_step"] <= 2000
    early = predict_records(model, planted(3000, 1), BUDGET, step=1000)
    assert not early["already"] and 0 <= early["p_generalize"] <= 1 and early["predicted_step"] >= 1000


def test_the_live_line_shows_only_between_memorization_and_generalization():
    model = fit(_examples(range(40)))
    recs = planted(3000, 1)
    before = [r for r in recs if r["step"] <= 50]  # train accuracy 0.55: not memorized yet
    plateau = [r for r in recs if r["step"] <= 1000]
    text = live_text(model, plateau, BUDGET)
    p = predict_records(model, plateau, BUDGET)["p_generalize"]
    assert text == f"P(gen) {p:.2f}"
    assert live_text(model, before, BUDGET) == "" and live_text(model, recs, BUDGET) == ""
    assert live_text(None, plateau, BUDGET) == "" and live_text(model, plateau[:1], BUDGET) == ""


def test_roc_auc():
    assert roc_auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.1, 0.9], [True, False]) == 0.0 and roc_auc([1.0], [True]) is None


def test_fit_needs_both_outcomes():
    with pytest.raises(ConfigError, match="runs that generalize and runs that do not"):
        fit([e for e in _examples(range(40)) if not e["grokked"]])


def test_the_shipped_model_loads_and_a_bad_model_file_is_refused(tmp_path):
    m = load_model()
    assert m["features"] == list(FEATURES) and m["trained_on"]["runs"] >= 40
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({**m, "classifier": ["__import__('os')"] * len(m["classifier"])}))
    with pytest.raises(ConfigError, match="not a grokscope predict model"):
        load_model(bad)
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_model(bad)


def _write_run(path, recs, status="completed"):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"name": "planted", "train": {"steps": BUDGET}, "task": {}}))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (path / "summary.json").write_text(json.dumps({"status": status, "generalization_split": "test"}))


def test_cli_fits_evaluates_and_forecasts(tmp_path, capsys):
    for sweep, seeds in (("train", range(50)), ("held", range(100, 150))):
        for s in seeds:
            rng = random.Random(s)
            grok = rng.random() < 0.5
            _write_run(tmp_path / sweep / "runs" / f"seed-{s}",
                       planted(rng.randint(1200, 3800) if grok else None, s, None if grok else 0.1 / BUDGET))
    model = tmp_path / "model.json"
    assert main(["predict", "--fit", str(tmp_path / "train"), "--held_out", str(tmp_path / "held"),
                 "--out", str(model)]) == 0
    out = capsys.readouterr().out
    assert " 25%" in out and "AUC" in out and "model:" in out
    m = json.loads(model.read_text())
    assert m["evaluation"]["runs"] == 50
    assert {r["cutoff"] for r in m["evaluation"]["rows"]} == {0.1, 0.25, 0.5}
    run = tmp_path / "held" / "runs" / "seed-100"
    assert main(["predict", str(run), "--model", str(model), "--step", "1000"]) == 0
    assert "at step 1,000 of 4,000 (25%): P(generalizes within budget) = " in capsys.readouterr().out
    _write_run(tmp_path / "running", planted(None, 1), status="running")  # unfinished: not an example
    assert run_examples([str(tmp_path / "running")]) == []


@pytest.mark.parametrize("argv,needle", [
    (["predict"], "give run directories"),
    (["predict", "--fit", "x"], "out: give the model file"),
    (["predict", "r", "--held_out", "x"], "go with --fit"),
    (["predict", "r", "--step", "0"], "step: must be an integer >= 1"),
])
def test_cli_bad_input_is_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
