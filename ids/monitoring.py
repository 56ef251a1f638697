"""Data drift of a window of records against a reference, with Evidently.

The retrain decision on a result lives in ``ids.retrain_decision``, the
Evidently workspace of past runs in ``ids.drift_workspace``.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ids.catalog import BOOLEAN, CATEGORICAL, NUMERIC, NUMERIC_DASH
from ids.drift_config import EXCLUDED_COLUMNS, DriftConfig

logger = logging.getLogger(__name__)

_NUMERICAL_KINDS = {NUMERIC, NUMERIC_DASH, BOOLEAN, "numerical"}
_CATEGORICAL_KINDS = {CATEGORICAL}


@dataclass
class DriftResult:
    """Drift of one window: per-column verdicts, the share, the Evidently run.

    ``columns`` holds one dict per reference column: ``column``, ``method``,
    ``score``, ``threshold``, ``drifted``, ``scale`` ("log1p" or None) and
    ``note`` (empty when compared, else why not: "missing in current",
    "skipped: all null (...)", "constant", "excluded: ...").
    """

    drift_share: float
    drifted_columns: list[str]
    columns: list[dict[str, Any]]
    rows_reference: int
    rows_current: int
    rows_compared: tuple[int, int] = (0, 0)
    prediction_drift: dict[str, Any] | None = None
    html_path: Path | None = None
    snapshot: Any = None
    seconds: float = 0.0

    @property
    def compared_columns(self) -> list[str]:
        """Columns that were tested for drift."""
        return [c["column"] for c in self.columns if not c["note"]]

    @property
    def skipped(self) -> dict[str, str]:
        """Columns not tested, with the reason."""
        return {c["column"]: c["note"] for c in self.columns if c["note"]}

    def snapshot_json(self) -> str | None:
        """The Evidently run serialised as a workspace stores it."""
        return None if self.snapshot is None else self.snapshot.dumps()


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    column_kinds: dict[str, str] | None = None,
    config: DriftConfig | None = None,
    report_path: str | Path | None = None,
    prediction_column: str | None = None,
    *,
    timestamp: datetime | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` column by column with Evidently.

    Args:
        reference: Normalised records the model was trained on.
        current: Normalised records of the window to judge; may be empty.
        column_kinds: Kind per column (catalog kinds or "numerical"); columns
            not listed are typed from their dtype.
        config: Methods, thresholds, sampling and exclusions.
        report_path: Where to write the HTML report (parents are created).
        prediction_column: Overrides ``config.prediction_column``.
        timestamp: Time stamped on the Evidently run (default: now).

    Raises:
        ValueError: ``reference`` is not a non-empty frame, ``current`` is not
            a frame, or a column kind is unknown.
    """
    config = config or DriftConfig()
    _check_frames(reference, current)
    started = time.perf_counter()
    prediction = prediction_column or config.prediction_column
    kinds = _column_kinds(reference, column_kinds or {})

    baseline = _sample(reference, config.max_reference_rows, config.seed)
    window = _sample(current, config.max_current_rows, config.seed)
    screened = _screen(baseline, window, kinds, config, prediction)
    compared = [c for c, note in screened.items() if not note]
    result = DriftResult(
        drift_share=0.0,
        drifted_columns=[],
        columns=[_column_row(c, n) for c, n in screened.items()],
        rows_reference=len(reference),
        rows_current=len(current),
        rows_compared=(len(baseline), len(window)),
    )
    has_prediction = bool(
        prediction and prediction in baseline and prediction in window
    )
    if window.empty or not (compared or has_prediction):
        result.seconds = time.perf_counter() - started
        logger.info("drift: nothing to compare (%d current rows)", len(current))
        return result

    scaled = log_scale_columns(baseline, window, compared) if config.log_scale else []
    for row in result.columns:
        row["scale"] = "log1p" if row["column"] in scaled else None
    baseline, window = _log1p(baseline, scaled), _log1p(window, scaled)
    snapshot = _run_report(
        baseline,
        window,
        kinds,
        compared,
        config,
        prediction if has_prediction else None,
        timestamp,
    )
    _fill_from_snapshot(result, snapshot, prediction if has_prediction else None)
    result.snapshot = snapshot
    if report_path is not None:
        result.html_path = Path(report_path)
        result.html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(result.html_path))
    result.seconds = time.perf_counter() - started
    logger.info(
        "drift: share %.3f (%d of %d columns: %s) on %d rows in %.1f s%s",
        result.drift_share,
        len(result.drifted_columns),
        len(compared),
        ", ".join(result.drifted_columns) or "none",
        len(current),
        result.seconds,
        f", report {result.html_path}" if result.html_path else "",
    )
    return result


def _check_frames(reference: Any, current: Any) -> None:
    for name, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(
                f"{name} must be a pandas DataFrame of normalised records; "
                f"received {type(frame).__name__}"
            )
    if reference.empty:
        raise ValueError(
            f"reference has {len(reference)} rows and {reference.shape[1]} columns; "
            "drift needs the training reference (Detector.reference)"
        )


def _column_kinds(reference: pd.DataFrame, given: dict[str, str]) -> dict[str, str]:
    kinds = {}
    for column in reference.columns:
        kind = given.get(column)
        if kind is None:
            numeric = pd.api.types.is_numeric_dtype(reference[column])
            kind = "numerical" if numeric else CATEGORICAL
        if kind not in _NUMERICAL_KINDS | _CATEGORICAL_KINDS:
            raise ValueError(
                f"column {column!r} has kind {kind!r}; expected one of "
                f"{sorted(_NUMERICAL_KINDS | _CATEGORICAL_KINDS)}"
            )
        kinds[column] = "numerical" if kind in _NUMERICAL_KINDS else CATEGORICAL
    return kinds


def _sample(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    if limit is None or len(frame) <= limit:
        return frame
    return frame.sample(n=limit, random_state=seed)


def log_scale_columns(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]
) -> list[str]:
    """Numeric ``columns`` compared as ``log1p``: >= 0 in both frames, > 5 values.

    Byte and packet counters are heavy-tailed: one large flow in a sample moves
    a std-normed Wasserstein distance past 0.1 on stable traffic (see
    DriftConfig); on the log scale the same windows stay quiet.
    """
    chosen = []
    for column in columns:
        ref, cur = reference[column], current[column]
        if not (
            pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur)
        ):
            continue
        if ref.nunique() > 5 and ref.min() >= 0 and cur.min() >= 0:
            chosen.append(column)
    return chosen


def _log1p(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if not columns:
        return frame
    return frame.assign(**{c: np.log1p(frame[c]) for c in columns})


def screen_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    column_kinds: dict[str, str] | None = None,
    config: DriftConfig | None = None,
) -> dict[str, str]:
    """Each reference column with why it would not be compared ("" when it is)."""
    config = config or DriftConfig()
    _check_frames(reference, current)
    kinds = _column_kinds(reference, column_kinds or {})
    return _screen(reference, current, kinds, config, config.prediction_column)


def _screen(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    config: DriftConfig,
    prediction: str | None,
) -> dict[str, str]:
    notes = {}
    for column in reference.columns:
        if column == prediction:
            continue
        notes[column] = _screen_one(reference, current, column, kinds, config)
    return notes


def _screen_one(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    column: str,
    kinds: dict[str, str],
    config: DriftConfig,
) -> str:
    if column in config.excluded_columns:
        return "excluded: free text or identifier"
    if column not in current.columns:
        return "missing in current"
    if current.empty:
        return "skipped: empty window"
    ref, cur = reference[column], current[column]
    if kinds[column] == CATEGORICAL:
        levels = ref.nunique(dropna=True)
        if levels > config.max_categories:
            return (
                f"excluded: {levels} distinct values in reference "
                f"(> max_categories={config.max_categories})"
            )
    else:
        if not pd.api.types.is_numeric_dtype(cur):
            return f"skipped: numeric in reference, {cur.dtype} in current"
        ref = ref.replace([float("inf"), float("-inf")], float("nan"))
        cur = cur.replace([float("inf"), float("-inf")], float("nan"))
    ref_values, cur_values = int(ref.notna().sum()), int(cur.notna().sum())
    if ref_values == 0 or cur_values == 0:
        where = (
            "both"
            if ref_values == cur_values
            else ("reference" if ref_values == 0 else "current")
        )
        return f"skipped: all null ({where})"
    if min(ref_values, cur_values) < config.min_column_values:
        return (
            f"skipped: {ref_values} / {cur_values} non-null values in reference / "
            f"current (< min_column_values={config.min_column_values})"
        )
    if pd.concat([ref.dropna(), cur.dropna()]).nunique() == 1:
        return "constant"
    return ""


def _column_row(column: str, note: str) -> dict[str, Any]:
    keys = ("method", "score", "threshold", "scale")
    return {"column": column, **dict.fromkeys(keys), "drifted": False, "note": note}


def _run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    compared: list[str],
    config: DriftConfig,
    prediction: str | None,
    timestamp: datetime | None = None,
):
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    columns = compared + ([prediction] if prediction else [])
    numerical = [c for c in compared if kinds[c] == "numerical"]
    categorical = [c for c in compared if kinds[c] == CATEGORICAL]
    if prediction:
        numeric = pd.api.types.is_numeric_dtype(reference[prediction])
        (numerical if numeric else categorical).append(prediction)
    definition = DataDefinition(
        numerical_columns=numerical, categorical_columns=categorical
    )
    items: list = []
    if compared:
        items.append(_drift_preset(config, compared))
    if prediction:
        items.append(ValueDrift(column=prediction))
    report = Report(items, include_tests=True)
    with warnings.catch_warnings():
        # Evidently correlates the numeric columns for its plots; a column that
        # is constant inside the window makes that a 0/0, which is harmless.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        return report.run(
            Dataset.from_pandas(current[columns], data_definition=definition),
            Dataset.from_pandas(reference[columns], data_definition=definition),
            timestamp=timestamp,
        )


def _drift_preset(config: DriftConfig, columns: list[str]):
    from evidently.core.container import MetricContainer
    from evidently.presets import DataDriftPreset

    options = dict(
        columns=columns,
        drift_share=config.drift_share_threshold,
        num_method=config.num_method,
        cat_method=config.cat_method,
        num_threshold=config.num_threshold,
        cat_threshold=config.cat_threshold,
        per_column_method=dict(config.per_column_method) or None,
        per_column_threshold=dict(config.per_column_threshold) or None,
    )
    if config.summary_table:
        return DataDriftPreset(**options)
    preset = DataDriftPreset(**options)
    # The preset's own render builds a summary table by running every column's
    # test twice more; the container default keeps the per-column widgets.
    object.__setattr__(preset, "render", MetricContainer.render.__get__(preset))
    return preset


def _fill_from_snapshot(result: DriftResult, snapshot, prediction: str | None) -> None:
    rows = {row["column"]: row for row in result.columns}
    for metric_result in snapshot.metric_results.values():
        params = metric_result.metric_value_location.metric.params
        kind = params.get("type", "")
        if kind.endswith(":DriftedColumnsCount"):
            result.drift_share = float(metric_result.share.value)
            continue
        if not kind.endswith(":ValueDrift"):
            continue
        failed = [t for t in metric_result.tests if t.status.value == "FAIL"]
        verdict = {
            "method": params.get("method"),
            "score": float(metric_result.value),
            "threshold": params.get("threshold"),
            "drifted": bool(failed),
        }
        column = params["column"]
        if column == prediction:
            result.prediction_drift = {"column": column, **verdict}
        elif column in rows:
            rows[column].update(verdict)
    result.drifted_columns = [r["column"] for r in result.columns if r["drifted"]]


__all__ = [
    "EXCLUDED_COLUMNS",
    "DriftConfig",
    "DriftResult",
    "compute_drift",
    "log_scale_columns",
    "screen_columns",
]
