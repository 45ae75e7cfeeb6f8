"""The progress bar stays on one readable line of a 70-column terminal, the live forecast included."""

from __future__ import annotations

import io

import tqdm

from grokscope.training.engine import BAR_FORMAT, bar_text, short_name


def test_bar_fits_70_columns_with_accuracies_and_loss():
    buf = io.StringIO()
    name = short_name("a-very-long-preset-name")
    assert len(name) <= 10
    bar = tqdm.tqdm(total=100_000, file=buf, ncols=70, desc=name, bar_format=BAR_FORMAT, mininterval=0)
    for _ in range(3):
        bar.set_postfix_str(bar_text({"train_acc": 1.0, "test_acc": 0.2345, "train_loss": 1.234e-5}, "test"),
                            refresh=False)
        bar.update(33_333)
    plateau = bar_text({"train_acc": 1.0, "test_acc": 0.2345}, "test", "P(gen) 0.62")
    bar.set_postfix_str(plateau, refresh=False)
    bar.update(1)
    bar.close()
    lines = [line for line in buf.getvalue().replace("\r", "\n").split("\n") if line.strip()]
    assert lines and all(len(line) <= 70 for line in lines)
    assert "acc 1.000/0.234 loss 1.2e-05" in lines[-2] and "99999/100000" in lines[-2]
    assert "acc 1.000/0.234 P(gen) 0.62" in lines[-1] and "100000/100000" in lines[-1]


def test_bar_text_handles_missing_and_non_finite_values():
    assert bar_text({"train_acc": 0.5, "test_ood_acc": 0.25, "train_loss": float("nan")}, "test_ood") == \
        "acc 0.500/0.250 loss -"
    assert bar_text({}, "test") == "acc -/- loss -"
