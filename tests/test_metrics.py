"""The figures `spotter eval` reports (loss, accuracy, per-class precision/recall/F1, macro F1, confusion matrix),
checked against values worked out by hand and against scikit-learn as an independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as sklearn

from spotter.evaluation.clips import format_report, metrics_from_logits

NAMES = ["yes", "no", "unknown", "silence"]
TRUTH = [0, 0, 0, 1, 1, 2, 2, 2]  # no clip of silence
PREDICTED = [0, 0, 1, 1, 2, 2, 2, 0]


def _logits(predicted: list[int], n_classes: int) -> torch.Tensor:
    """ln 3 for the predicted class, 0 elsewhere: softmax gives it 3/6 = 1/2 and each other class 1/6."""
    logits = torch.zeros(len(predicted), n_classes)
    logits[torch.arange(len(predicted)), torch.tensor(predicted)] = math.log(3)
    return logits


@pytest.fixture
def hand():
    return metrics_from_logits(_logits(PREDICTED, 4), torch.tensor(TRUTH), NAMES)


def test_confusion_rows_are_the_true_class_columns_the_prediction(hand):
    assert hand["confusion"] == [[2, 1, 0, 0],
                                 [0, 1, 1, 0],
                                 [1, 0, 2, 0],
                                 [0, 0, 0, 0]]
    assert hand["n"] == 8 and hand["accuracy"] == 5 / 8


def test_per_class_precision_recall_f1_by_hand(hand):
    # yes: 2 of 3 predicted are right, 2 of 3 found; no: 1 of 2, 1 of 2; unknown: 2 of 3, 2 of 3.
    expected = {"yes": (2 / 3, 2 / 3, 3), "no": (1 / 2, 1 / 2, 2), "unknown": (2 / 3, 2 / 3, 3), "silence": (0, 0, 0)}
    for name, (p, r, support) in expected.items():
        c = hand["per_class"][name]
        assert c["precision"] == pytest.approx(p) and c["recall"] == pytest.approx(r) and c["support"] == support
        assert c["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)


def test_f1_macro_averages_only_the_classes_present(hand):
    # silence has no clip: it is left out of the mean, not counted as 0 (that would give 11/24)
    assert hand["f1_macro"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3) == pytest.approx(11 / 18)


def test_loss_is_the_mean_cross_entropy_by_hand(hand):
    # 5 right (probability 1/2: -ln 1/2 each) and 3 wrong (probability 1/6 of the true class)
    assert hand["loss"] == pytest.approx((5 * math.log(2) + 3 * math.log(6)) / 8, rel=1e-6)


def test_report_prints_the_hand_figures(hand):
    report = format_report(hand)
    assert "clips: 8" in report and "accuracy: 62.50%" in report and "macro F1: 0.6111" in report
    assert "no             0.500     0.500     0.500       2" in report


def test_metrics_agree_with_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(0)
    n_classes = 12
    labels = rng.integers(0, n_classes - 1, size=500)  # the last class never occurs
    logits = rng.normal(size=(500, n_classes)) + 2.0 * np.eye(n_classes)[labels] * rng.uniform(0, 2, (500, 1))
    names = [f"c{i}" for i in range(n_classes)]
    ours = metrics_from_logits(torch.tensor(logits, dtype=torch.float32), torch.tensor(labels), names)
    predicted = logits.argmax(1)
    classes = list(range(n_classes))
    assert 0.3 < ours["accuracy"] < 0.9  # neither trivial nor perfect
    assert ours["accuracy"] == pytest.approx(sklearn.accuracy_score(labels, predicted))
    assert ours["confusion"] == sklearn.confusion_matrix(labels, predicted, labels=classes).tolist()
    p, r, f, s = sklearn.precision_recall_fscore_support(labels, predicted, labels=classes, zero_division=0)
    for i, name in enumerate(names):
        c = ours["per_class"][name]
        assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    present = sorted(set(labels.tolist()))
    assert ours["f1_macro"] == pytest.approx(sklearn.f1_score(labels, predicted, labels=present, average="macro"))
    probs = torch.softmax(torch.tensor(logits), 1).numpy()
    assert ours["loss"] == pytest.approx(sklearn.log_loss(labels, probs, labels=classes), rel=1e-5)
