"""Leakage audit: single columns, or their raw formatting, that alone give the label."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

FEATURE = "feature"
FORMAT = "format"


@dataclass
class LeakageReport:
    """What the leakage audit found.

    Attributes:
        findings: Flagged columns, each ``{column, source, accuracy,
            distinct_values}``; ``source`` is ``"feature"`` or ``"format"``.
        drop_columns: Flagged feature columns (format findings are reported
            only: the loader already strips the formatting from the values).
        threshold: Held-out accuracy at or above which a column is flagged.
        baseline: Held-out accuracy of always predicting the majority label.
        scores: Every audited column with its held-out accuracy, best first.
        note: Why the audit was skipped, if it was.
    """

    findings: list[dict] = field(default_factory=list)
    drop_columns: list[str] = field(default_factory=list)
    threshold: float = 0.99
    baseline: float | None = None
    scores: list[dict] = field(default_factory=list)
    note: str | None = None

    def to_markdown(self, top: int = 10) -> str:
        """The report as a Markdown section: findings, then the top scores."""
        lines = ["## Leakage audit", ""]
        if self.note:
            return "\n".join(lines + [self.note, ""])
        lines.append(
            f"A column is flagged when a per-value lookup learnt on half the rows "
            f"reaches accuracy >= {self.threshold:.2f} on the other half and beats "
            f"the majority baseline ({self.baseline:.4f})."
        )
        lines.append("")
        if self.findings:
            lines += _table(self.findings)
        else:
            lines.append("No column reaches the threshold.")
        lines += ["", f"Drop: {', '.join(self.drop_columns) or 'nothing'}", ""]
        if self.scores:
            lines += [f"Top {min(top, len(self.scores))} columns by accuracy:", ""]
            lines += _table(self.scores[:top])
        return "\n".join(lines) + "\n"


def _table(entries: list[dict]) -> list[str]:
    lines = ["| column | source | accuracy | distinct values |", "|---|---|---|---|"]
    for entry in entries:
        lines.append(
            f"| `{entry['column']}` | {entry['source']} | {entry['accuracy']:.4f} "
            f"| {entry['distinct_values']:,} |"
        )
    return lines


def _check_inputs(
    records: pd.DataFrame, y: pd.Series, formats: pd.DataFrame | None, threshold
) -> None:
    if not isinstance(records, pd.DataFrame):
        raise ValueError(f"records must be a DataFrame; got {type(records).__name__}")
    if len(records) < 2:
        raise ValueError(
            f"records has {len(records)} row(s); the audit needs at least 2 to "
            "hold half of them out"
        )
    if len(y) != len(records):
        raise ValueError(
            f"y has {len(y)} rows but records has {len(records)}; pass the "
            "target of the same rows"
        )
    if pd.isna(y).any():
        raise ValueError(
            f"y holds {int(pd.isna(y).sum())} missing value(s); drop those rows "
            "before the audit"
        )
    if formats is not None and len(formats) != len(records):
        raise ValueError(
            f"formats has {len(formats)} rows but records has {len(records)}; "
            "pass the format signatures of the same rows (LoadedDataset.formats)"
        )
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1]; got {threshold!r}")


def _lookup_accuracy(
    values: pd.Series, target: np.ndarray, n_labels: int, train: np.ndarray
) -> tuple[float, int]:
    """Held-out accuracy of a majority-label-per-value lookup, and distinct values.

    ``train`` marks the rows the lookup learns from; the rest are scored.
    """
    # NaN is a value of its own: "missing" can be a proxy too.
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    n_values = len(uniques)
    counts = np.bincount(
        codes[train] * n_labels + target[train], minlength=n_values * n_labels
    ).reshape(n_values, n_labels)
    overall = int(np.argmax(np.bincount(target[train], minlength=n_labels)))
    majority = counts.argmax(axis=1)
    # A value never seen in the training half falls back to the overall majority.
    majority[counts.sum(axis=1) == 0] = overall
    test = ~train
    accuracy = float(np.mean(majority[codes[test]] == target[test]))
    return accuracy, n_values


def audit_leakage(
    records: pd.DataFrame,
    y: pd.Series,
    formats: pd.DataFrame | None = None,
    threshold: float = 0.99,
    seed: int = 0,
) -> LeakageReport:
    """Flag columns whose exact value, alone, predicts ``y``.

    For each column a majority-label-per-value lookup is learnt on a random half
    of the rows and scored on the other half, so a continuous column unique to
    each row cannot score by memorising. A column is flagged when it reaches
    ``threshold`` and beats always predicting the majority label. The formatting
    signatures in ``formats`` (ids.data.format_signatures) are audited the same
    way and reported with source ``"format"``.

    Args:
        records: Candidate model inputs, one column per feature.
        y: Target of the same rows (the binary ``label`` is the usual choice).
        formats: Raw formatting signature per text column, or ``None``.
        threshold: Held-out accuracy at or above which a column is flagged.
        seed: Seed of the random half split.
    """
    _check_inputs(records, y, formats, threshold)
    target, labels = pd.factorize(pd.Series(y).reset_index(drop=True))
    n_rows = len(target)
    share = float(np.bincount(target).max() / n_rows)
    if share >= threshold:
        note = (
            f"Audit skipped: the majority label already covers {share:.4f} of the "
            f"{n_rows:,} rows (>= threshold {threshold:.2f}), so every column "
            "would look like a proxy."
        )
        logger.warning(note)
        return LeakageReport(threshold=threshold, note=note)

    rng = np.random.default_rng(seed)
    train = np.zeros(n_rows, dtype=bool)
    train[rng.permutation(n_rows)[: n_rows // 2]] = True
    test_target = target[~train]
    overall = int(np.argmax(np.bincount(target[train], minlength=len(labels))))
    baseline = float(np.mean(test_target == overall))

    sources = [(FEATURE, records)]
    if formats is not None:
        sources.append((FORMAT, formats))
    scores = []
    for source, frame in sources:
        frame = frame.reset_index(drop=True)
        for column in frame.columns:
            accuracy, distinct = _lookup_accuracy(
                frame[column], target, len(labels), train
            )
            scores.append(
                {
                    "column": str(column),
                    "source": source,
                    "accuracy": accuracy,
                    "distinct_values": distinct,
                }
            )
    scores.sort(key=lambda s: (-s["accuracy"], s["source"], s["column"]))

    findings = [
        s for s in scores if s["accuracy"] >= threshold and s["accuracy"] > baseline
    ]
    drop = [f["column"] for f in findings if f["source"] == FEATURE]
    for finding in findings:
        logger.warning(
            "leakage: %s column %r gives the label with held-out accuracy %.4f "
            "(%d distinct values)",
            finding["source"],
            finding["column"],
            finding["accuracy"],
            finding["distinct_values"],
        )
    logger.info(
        "leakage audit: %d column(s) audited, %d flagged, baseline %.4f",
        len(scores),
        len(findings),
        baseline,
    )
    return LeakageReport(findings, drop, threshold, baseline, scores)
