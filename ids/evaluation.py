"""Scoring predictions against a fixed class vocabulary, reference scores, reports."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

logger = logging.getLogger(__name__)

SUMMARY_KEYS: tuple[str, ...] = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "f1_weighted",
)
# Column order of the results table; the paper's figure sits beside ours.
RESULT_COLUMNS: tuple[str, ...] = (
    "dataset",
    "task",
    "model",
    "optimizer",
    "accuracy",
    "paper_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "f1_weighted",
    "f1_macro_strict",
    "majority_accuracy",
    "ceiling_accuracy",
    "train_seconds",
    "rows_train",
    "rows_test",
)
_REQUIRED_RESULT_KEYS = ("dataset", "task", "model")
_INTEGER_COLUMNS = ("rows_train", "rows_test")


def _as_labels(values, classes: tuple[str, ...], what: str) -> np.ndarray:
    labels = np.asarray(values, dtype=object).ravel()
    unknown = sorted({str(v) for v in pd.unique(labels)} - set(classes))
    if unknown:
        raise ValueError(
            f"{what} holds class name(s) {unknown[:5]} outside the vocabulary "
            f"{list(classes)}; pass class names, not codes, of this task"
        )
    return labels


def _check_pair(y_true, y_pred, classes: tuple[str, ...]):
    if not classes:
        raise ValueError("classes is empty; pass the task's class vocabulary")
    truth = _as_labels(y_true, classes, "y_true")
    pred = _as_labels(y_pred, classes, "y_pred")
    if len(truth) != len(pred):
        raise ValueError(
            f"y_true has {len(truth)} rows but y_pred has {len(pred)}; they must "
            "describe the same rows"
        )
    if len(truth) == 0:
        raise ValueError("y_true is empty; there is nothing to score")
    return truth, pred


def _present(truth: np.ndarray, classes: tuple[str, ...]) -> list[str]:
    seen = set(pd.unique(truth))
    return [c for c in classes if c in seen]


def _summary(truth: np.ndarray, pred: np.ndarray, present: list[str]) -> dict:
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, pred, labels=present, average="macro", zero_division=0
    )
    weighted = f1_score(
        truth, pred, labels=present, average="weighted", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "f1_weighted": float(weighted),
    }


def score_predictions(y_true, y_pred, classes: tuple[str, ...]) -> dict:
    """Accuracy, macro/weighted scores, per-class scores and the confusion matrix.

    Macro and weighted averages run over the classes present in ``y_true``: a
    class the test split lacks would otherwise add a zero to the mean.
    ``per_class`` and ``confusion`` cover the whole vocabulary; an absent class
    is marked ``present: False`` with ``None`` scores.

    Args:
        y_true: True class names.
        y_pred: Predicted class names.
        classes: The task's fixed vocabulary, in matrix order.
    """
    classes = tuple(classes)
    truth, pred = _check_pair(y_true, y_pred, classes)

    present = _present(truth, classes)
    scores = _summary(truth, pred, present)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=list(classes), average=None, zero_division=0
    )
    per_class = {}
    for i, name in enumerate(classes):
        is_present = name in present
        per_class[name] = {
            "precision": float(precision[i]) if is_present else None,
            "recall": float(recall[i]) if is_present else None,
            "f1": float(f1[i]) if is_present else None,
            "support": int(support[i]),
            "present": is_present,
        }
    matrix = confusion_matrix(truth, pred, labels=list(classes))

    scores["per_class"] = per_class
    scores["confusion"] = matrix.astype(int).tolist()
    return scores


def majority_reference(y_train, y_test, classes: tuple[str, ...]) -> dict:
    """Scores of always predicting the most frequent training class.

    Ties go to the class that comes first in ``classes``.
    """
    classes = tuple(classes)
    train = _as_labels(y_train, classes, "y_train")
    if len(train) == 0:
        raise ValueError("y_train is empty; the majority class is undefined")
    counts = pd.Series(train).value_counts()
    top = counts.max()
    majority = next(c for c in classes if counts.get(c, 0) == top)
    truth, pred = _check_pair(y_test, np.full(len(y_test), majority, object), classes)

    scores = _summary(truth, pred, _present(truth, classes))
    scores["majority_class"] = majority
    return scores


def ceiling_reference(X_test: pd.DataFrame, y_test, classes: tuple[str, ...]) -> dict:
    """The best accuracy any per-row model can reach on this test split.

    Rows with the same input vector must get the same prediction, so a group
    of identical inputs with mixed labels caps the score: each group is given
    its majority label (ties to the class first in ``classes``).
    """
    classes = tuple(classes)
    if not isinstance(X_test, pd.DataFrame) or X_test.shape[1] == 0:
        raise ValueError(
            f"X_test must be a DataFrame with at least one column; got "
            f"{type(X_test).__name__} of shape {getattr(X_test, 'shape', None)}"
        )
    truth = _as_labels(y_test, classes, "y_test")
    if len(truth) != len(X_test):
        raise ValueError(
            f"X_test has {len(X_test)} rows but y_test has {len(truth)}; they must "
            "describe the same rows"
        )

    keys = pd.util.hash_pandas_object(X_test, index=False).to_numpy()
    rank = {c: i for i, c in enumerate(classes)}
    frame = pd.DataFrame({"key": keys, "label": [rank[c] for c in truth]})
    counts = frame.groupby(["key", "label"]).size().rename("n").reset_index()
    # Largest count first, then vocabulary order, so ties are deterministic.
    counts = counts.sort_values(["key", "n", "label"], ascending=[True, False, True])
    best = counts.drop_duplicates("key").set_index("key")["label"]
    pred_codes = best.reindex(keys).to_numpy()
    pred = np.asarray(classes, dtype=object)[pred_codes]

    scores = _summary(truth, pred, _present(truth, classes))
    scores["distinct_inputs"] = int(len(best))
    return scores


def plot_confusion(y_true, y_pred, classes: tuple[str, ...], path, title: str) -> Path:
    """Write a PNG confusion matrix of the classes that occur, counts annotated."""
    # Imported here so that importing the package stays free of matplotlib; the
    # Agg canvas renders without a display and without pyplot's global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes = tuple(classes)
    truth, pred = _check_pair(y_true, y_pred, classes)
    seen = set(pd.unique(truth)) | set(pd.unique(pred))
    shown = [c for c in classes if c in seen]
    matrix = confusion_matrix(truth, pred, labels=shown)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    size = 2.5 + 0.6 * len(shown)
    figure = Figure(figsize=(size, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(shown)), shown, rotation=45, ha="right")
    axes.set_yticks(range(len(shown)), shown)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    cut = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > cut else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=colour)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    logger.info("confusion matrix written to %s", path)
    return path


def _clean(value):
    """JSON-safe value: NaN and infinities become None, numpy scalars plain."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _per_class_lines(records: list[dict]) -> list[str]:
    """Per-class precision / recall / F1 of each candidate that carries them."""
    lines = []
    for record in records:
        per_class = record.get("per_class")
        if not per_class:
            continue
        title = (
            record.get("tag") or f"{record['model']} {record.get('optimizer') or ''}"
        )
        lines += [
            "",
            f"### per class: {title}",
            "",
            "| class | precision | recall | f1 | support |",
            "|---|---|---|---|---|",
        ]
        for cls, scores in per_class.items():
            if not scores.get("present"):
                lines.append(f"| {cls} | absent | absent | absent | 0 |")
                continue
            cells = [_cell("f1", scores.get(k)) for k in ("precision", "recall", "f1")]
            lines.append(f"| {cls} | {' | '.join(cells)} | {scores.get('support')} |")
    return lines


def _cell(column: str, value) -> str:
    value = _clean(value)
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if column in _INTEGER_COLUMNS:
        return f"{int(value):,}"
    if column == "train_seconds":
        return f"{value:.1f}"
    return f"{value:.4f}"


def _check_rows(rows: Sequence[dict]) -> None:
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(
                f"results row {i} is a {type(row).__name__}; expected dict"
            )
        missing = [k for k in _REQUIRED_RESULT_KEYS if row.get(k) is None]
        if missing:
            raise ValueError(
                f"results row {i} lacks {missing}; every row names its dataset, "
                f"task and model (got keys {sorted(row)})"
            )


def write_results(
    rows: list[dict], out_dir, name: str = "results"
) -> tuple[Path, Path]:
    """Write the results table as ``<name>.md`` and ``<name>.json`` in ``out_dir``.

    Missing values and NaN print as ``n/a`` in Markdown and ``null`` in JSON.
    Keys beyond the table's columns are kept in the JSON only.
    """
    rows = list(rows)
    _check_rows(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    records = []
    for row in rows:
        record = {column: _clean(row.get(column)) for column in RESULT_COLUMNS}
        record.update({k: _clean(v) for k, v in row.items() if k not in record})
        records.append(record)
    lines = [
        f"# {name}: {len(rows)} candidate(s)",
        "",
        "| " + " | ".join(RESULT_COLUMNS) + " |",
        "|" + "---|" * len(RESULT_COLUMNS),
    ]
    for record in records:
        cells = [_cell(c, record[c]) for c in RESULT_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _per_class_lines(records)
    lines += [
        "",
        "paper_accuracy is the published figure; majority and ceiling are the "
        "always-majority and identical-input limits on the same test split.",
    ]

    md_path = out / f"{name}.md"
    json_path = out / f"{name}.json"
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    json_path.write_text(
        json.dumps(records, indent=2, allow_nan=False, default=str) + "\n",
        encoding="utf-8",
    )
    logger.info("results for %d candidate(s) written to %s", len(rows), md_path)
    return md_path, json_path
