"""Tests of ids.evaluation: scores over a fixed vocabulary, references, reports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ids.catalog import BINARY_CLASSES, CLASSES
from ids.evaluation import (
    RESULT_COLUMNS,
    ceiling_reference,
    majority_reference,
    plot_confusion,
    score_predictions,
    write_results,
)

TRUTH = ["normal", "normal", "normal", "ddos", "ddos", "xss"]
PRED = ["normal", "normal", "ddos", "ddos", "ddos", "normal"]


def test_score_predictions_reports_absent_class_as_absent():
    scores = score_predictions(TRUTH, PRED, CLASSES)

    mitm = scores["per_class"]["mitm"]
    assert mitm == {
        "precision": None,
        "recall": None,
        "f1": None,
        "support": 0,
        "present": False,
    }
    assert scores["per_class"]["ddos"]["present"] is True
    assert scores["per_class"]["ddos"]["support"] == 2
    assert set(scores["per_class"]) == set(CLASSES)


def test_score_predictions_averages_macro_over_present_classes_only():
    scores = score_predictions(TRUTH, PRED, CLASSES)

    # normal: p 2/3 r 2/3; ddos: p 2/3 r 1; xss: p 0 r 0 (never predicted).
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["precision_macro"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert scores["recall_macro"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    f1_ddos = 2 * (2 / 3) * 1 / (2 / 3 + 1)
    assert scores["f1_macro"] == pytest.approx((2 / 3 + f1_ddos + 0) / 3)
    assert scores["f1_weighted"] == pytest.approx((3 * 2 / 3 + 2 * f1_ddos) / 6)


def test_score_predictions_confusion_covers_full_vocabulary():
    scores = score_predictions(TRUTH, PRED, CLASSES)

    matrix = np.array(scores["confusion"])
    assert matrix.shape == (len(CLASSES), len(CLASSES))
    normal, ddos = CLASSES.index("normal"), CLASSES.index("ddos")
    assert matrix[normal, ddos] == 1
    assert matrix[ddos, ddos] == 2
    assert matrix.sum() == len(TRUTH)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        (
            ["normal", "0"],
            ["normal", "normal"],
            r"y_true holds class name\(s\) \['0'\]",
        ),
        (["normal"], ["normal", "attack"], "y_true has 1 rows but y_pred has 2"),
        ([], [], "y_true is empty"),
        (["normal"], ["bogus"], r"y_pred holds class name\(s\) \['bogus'\]"),
    ],
)
def test_score_predictions_rejects_bad_inputs(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        score_predictions(y_true, y_pred, BINARY_CLASSES)


def test_majority_reference_predicts_training_majority():
    y_train = ["attack"] * 7 + ["normal"] * 3
    y_test = ["attack", "attack", "normal", "normal", "normal"]

    scores = majority_reference(y_train, y_test, BINARY_CLASSES)

    assert scores["majority_class"] == "attack"
    assert scores["accuracy"] == pytest.approx(2 / 5)
    assert scores["recall_macro"] == pytest.approx(0.5)
    assert "per_class" not in scores and "confusion" not in scores


def test_ceiling_reference_caps_conflicting_duplicates():
    # Rows 0-2 share one input vector with labels normal, attack, attack; rows 3
    # and 4 share another with normal, attack; row 5 is unique.
    X = pd.DataFrame(
        {
            "a": [1.0, 1.0, 1.0, 2.0, 2.0, 3.0],
            "b": ["x", "x", "x", "y", "y", "y"],
        }
    )
    y = ["normal", "attack", "attack", "normal", "attack", "attack"]

    scores = ceiling_reference(X, y, BINARY_CLASSES)

    # Best per group: 2 of 3, then 1 of 2, then 1 of 1 -> 4 of 6.
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["accuracy"] < 1.0
    assert scores["distinct_inputs"] == 3


def test_ceiling_reference_is_one_when_inputs_are_unique():
    X = pd.DataFrame({"a": [1, 2, 3, 4]})

    scores = ceiling_reference(X, ["normal", "attack"] * 2, BINARY_CLASSES)

    assert scores["accuracy"] == 1.0
    assert scores["distinct_inputs"] == 4


def test_ceiling_reference_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="X_test has 2 rows but y_test has 1"):
        ceiling_reference(pd.DataFrame({"a": [1, 2]}), ["normal"], BINARY_CLASSES)


def test_plot_confusion_writes_png(tmp_path):
    path = plot_confusion(TRUTH, PRED, CLASSES, tmp_path / "cm" / "c.png", "toy")

    data = path.read_bytes()
    assert data.startswith(b"\x89PNG")
    assert len(data) > 1000


def _row(**overrides):
    row = {
        "dataset": "network",
        "task": "binary",
        "model": "gru",
        "optimizer": "adam",
        "accuracy": 0.98765,
        "precision_macro": 0.9,
        "recall_macro": 0.8,
        "f1_macro": 0.85,
        "f1_weighted": 0.97,
        "f1_macro_strict": float("nan"),
        "majority_accuracy": 0.76,
        "ceiling_accuracy": 0.999,
        "train_seconds": 12.345,
        "rows_train": 120000,
        "rows_test": 20000,
        "paper_accuracy": 0.99,
    }
    row.update(overrides)
    return row


def test_write_results_prints_na_for_nan_and_missing(tmp_path):
    rows = [_row(), _row(model="lstm", paper_accuracy=None, optimizer=np.nan)]

    md_path, json_path = write_results(rows, tmp_path)

    lines = md_path.read_text().splitlines()
    assert lines[0].startswith("# results")
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == list(RESULT_COLUMNS)
    assert header.index("paper_accuracy") == header.index("accuracy") + 1
    first = [c.strip() for c in lines[4].strip("|").split("|")]
    second = [c.strip() for c in lines[5].strip("|").split("|")]
    assert first[header.index("f1_macro_strict")] == "n/a"
    assert first[header.index("accuracy")] == "0.9877"
    assert first[header.index("rows_train")] == "120,000"
    assert second[header.index("paper_accuracy")] == "n/a"
    assert second[header.index("optimizer")] == "n/a"
    records = json.loads(json_path.read_text())
    assert records[0]["f1_macro_strict"] is None
    assert records[1]["paper_accuracy"] is None
    assert records[0]["paper_accuracy"] == 0.99


def test_write_results_rejects_row_without_model(tmp_path):
    with pytest.raises(ValueError, match=r"results row 0 lacks \['model'\]"):
        write_results([_row(model=None)], tmp_path)
