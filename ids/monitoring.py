"""Data drift of a window of records against a reference, and the retrain decision."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ids.catalog import BOOLEAN, CATEGORICAL, NUMERIC, NUMERIC_DASH

logger = logging.getLogger(__name__)

# Free text and identifiers: their levels name hosts, URIs and certificates of the
# testbed, so a new value is news about the testbed, not about behaviour.
EXCLUDED_COLUMNS: tuple[str, ...] = (
    "dns_query",
    "http_uri",
    "http_user_agent",
    "ssl_subject",
    "ssl_issuer",
)
_NUMERICAL_KINDS = {NUMERIC, NUMERIC_DASH, BOOLEAN, "numerical"}
_CATEGORICAL_KINDS = {CATEGORICAL}


@dataclass(frozen=True)
class DriftConfig:
    """How drift is measured and when it calls for a retrain.

    Calibrated with ``benchmarks/drift_core.py --calibrate`` on the real network
    file (all numbers in ``benchmarks/results/drift_calibration.md``): reference
    = 50,000 random rows; windows = other rows of the same class mix ("stable",
    5 draws) or of another mix of ``type`` (2 draws each); 33-35 columns
    compared; drift share min-max over the draws, each test at its default
    threshold; "log1p" = counters on the log scale (``log_scale``):

    ======================  =========  =========  =========  =========  =========
    window rows             500        1k         5k         20k        100k
    ======================  =========  =========  =========  =========  =========
    stable, default, log1p  0.00       0.00       0.00       0.00       0.00
    stable, default, raw    0.00-0.09  0.00-0.03  0.00       0.00-0.03  0.00
    stable, ks+chisquare    0.00-0.03  0.00-0.06  0.03-0.18  0.06-0.12  0.14-0.29
    ddos+scanning, log1p    0.36       0.33-0.36  0.36       0.36       0.35
    ddos+scanning, raw      0.18-0.24  0.15-0.18  0.18       0.18       0.18
    no normal, log1p        0.33-0.39  0.39-0.42  0.39       0.39       0.38-0.39
    only normal, log1p      0.48       0.48       0.48-0.53  0.46-0.50  0.46-0.47
    ======================  =========  =========  =========  =========  =========

    With a reference over 1,000 rows Evidently picks normed Wasserstein
    (numbers with > 5 values) and Jensen-Shannon (the rest), both at 0.1. On the
    raw scale the byte/packet counters make Wasserstein noisy when the reference
    is smaller: with 10,000 reference rows stable windows reach 0.18 (raw) and
    stay at 0.00 (log1p), hence ``log_scale``. K-S / chi-square p-values flag
    more stable columns the larger the window (0.29 at 100k; 0.45 at 20k with a
    10k reference), so they are not the default. ``drift_share_threshold`` 0.10
    sits between the stable floor (0.03 at most, any reference size, 1k+ rows)
    and the mildest shift (0.33); Evidently's own 0.5 would pass most shifts
    above as no drift. Stable 200-row windows reach 0.06, hence ``min_records``
    1,000. Sampling the window to 25,000 rows changes no decision (the 20k and
    100k columns agree) and takes a 100k window vs 50k reference from 9.4 to
    5.4-6.5 s, HTML written (2 cores; the first call in a process adds about
    7 s importing Evidently). ``cooldown_minutes`` is policy: one retrain per
    6 hours.

    Attributes:
        min_records: Windows with fewer records never trigger a retrain.
        drift_share_threshold: Share of compared columns that must drift.
        num_method, cat_method: Evidently stat test names for numeric and
            categorical columns; ``None`` keeps Evidently's size-based default.
        num_threshold, cat_threshold: Per-kind thresholds; ``None`` = the
            test's default.
        per_column_method, per_column_threshold: Overrides by column.
        max_reference_rows, max_current_rows: Larger frames are sampled to
            this many rows (seeded) to bound the report's time.
        excluded_columns: Never compared (free text, identifiers).
        max_categories: A categorical column with more distinct values in the
            reference is excluded as high-cardinality.
        min_column_values: A column with fewer non-null values in either frame
            is skipped (a distribution of a handful of values is noise).
        prediction_column: Column of model predictions to test for drift
            separately from the features.
        cooldown_minutes: No new retrain this soon after the last one.
        log_scale: Compare non-negative numeric columns with more than 5
            values (byte, packet counters, durations) as ``log1p(x)``.
        summary_table: Also render Evidently's summary table (it recomputes
            every column's drift twice more: about +3 s on 35 columns).
        seed: Seed of the sampling.
    """

    min_records: int = 1000
    drift_share_threshold: float = 0.10
    num_method: str | None = None
    cat_method: str | None = None
    num_threshold: float | None = None
    cat_threshold: float | None = None
    per_column_method: dict[str, str] = field(default_factory=dict)
    per_column_threshold: dict[str, float] = field(default_factory=dict)
    max_reference_rows: int | None = 50_000
    max_current_rows: int | None = 25_000
    excluded_columns: tuple[str, ...] = EXCLUDED_COLUMNS
    max_categories: int = 50
    min_column_values: int = 30
    prediction_column: str | None = None
    cooldown_minutes: float = 360.0
    log_scale: bool = True
    summary_table: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "drift_share_threshold": 0 < self.drift_share_threshold <= 1,
            "min_records": self.min_records >= 1,
            "max_categories": self.max_categories >= 1,
            "min_column_values": self.min_column_values >= 1,
            "max_reference_rows": (self.max_reference_rows or 2) >= 2,
            "max_current_rows": (self.max_current_rows or 2) >= 2,
            "cooldown_minutes": self.cooldown_minutes >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is out of range; expected "
                    f"{_RANGES[name]}"
                )


_RANGES = {
    "drift_share_threshold": "a share in (0, 1]",
    "min_records": "an integer >= 1",
    "max_categories": "an integer >= 1",
    "min_column_values": "an integer >= 1",
    "max_reference_rows": "None or an integer >= 2",
    "max_current_rows": "None or an integer >= 2",
    "cooldown_minutes": "minutes >= 0",
}


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


@dataclass(frozen=True)
class Decision:
    """Whether to retrain, and why, in words an operator can act on."""

    retrain: bool
    reason: str


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


def decide_retrain(
    result: DriftResult,
    config: DriftConfig | None = None,
    last_retrain_at: datetime | None = None,
    now: datetime | None = None,
) -> Decision:
    """Retrain when enough columns (or the predictions) drift on a full window.

    A window under ``config.min_records`` records, or with no column compared,
    never triggers; neither does a drift inside the cooldown after the last
    retrain. ``now`` defaults to the current UTC time.
    """
    config = config or DriftConfig()
    now = now or datetime.now(UTC)
    if result.rows_current == 0:
        return Decision(False, "empty window: no records arrived, nothing to judge")
    if result.rows_current < config.min_records:
        return Decision(
            False,
            f"window of {result.rows_current} records is under min_records="
            f"{config.min_records}; drift is not judged on so few records",
        )
    compared = result.compared_columns
    prediction = result.prediction_drift or {}
    if not compared and not prediction:
        return Decision(
            False,
            f"no column could be compared ({len(result.columns)} skipped: "
            f"{_short(result.skipped)})",
        )
    threshold = config.drift_share_threshold
    share_drift = bool(compared) and result.drift_share >= threshold
    drifted = ", ".join(result.drifted_columns) or "none"
    what = (
        f"drift share {result.drift_share:.2f} "
        f"{'>=' if share_drift else '<'} {threshold:.2f} "
        f"({len(result.drifted_columns)} of {len(compared)} columns: {drifted})"
    )
    if prediction:
        verdict = "drifted" if prediction["drifted"] else "stable"
        what += (
            f", predictions {verdict} ({prediction['column']!r}: "
            f"{prediction['score']:.3f} by {prediction['method']})"
        )
    what += f" on {result.rows_current} records"
    if not (share_drift or prediction.get("drifted")):
        return Decision(False, f"no drift: {what}")
    if last_retrain_at is not None:
        _check_comparable(last_retrain_at, now)
        allowed = last_retrain_at + timedelta(minutes=config.cooldown_minutes)
        if now < allowed:
            return Decision(
                False,
                f"cooldown: {what}, but the last retrain was at "
                f"{last_retrain_at.isoformat()}; the next is allowed from "
                f"{allowed.isoformat()} (cooldown_minutes={config.cooldown_minutes:g})",
            )
    return Decision(True, f"drift: {what}")


def _check_comparable(last: datetime, now: datetime) -> None:
    if (last.tzinfo is None) != (now.tzinfo is None):
        raise ValueError(
            f"last_retrain_at {last.isoformat()!r} and now {now.isoformat()!r} mix "
            "naive and timezone-aware times; pass both with a timezone (UTC)"
        )


def _short(skipped: dict[str, str], limit: int = 3) -> str:
    items = [f"{c} ({n})" for c, n in list(skipped.items())[:limit]]
    more = len(skipped) - limit
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def add_to_workspace(
    result: DriftResult, workspace_dir: str | Path, project_name: str
) -> str:
    """Store the run in a local Evidently workspace, one project per dataset.

    ``evidently ui --workspace DIR`` then shows the runs of each dataset over
    time, with a panel of the drifted-column share.

    Returns:
        The id of the stored run.

    Raises:
        ValueError: The result holds no Evidently run (nothing was compared).
    """
    if result.snapshot is None:
        raise ValueError(
            f"the drift result holds no Evidently run (rows_current="
            f"{result.rows_current}, compared columns: {result.compared_columns}); "
            "only a window that was compared can be stored"
        )
    if not project_name:
        raise ValueError(
            f"project_name must be a dataset name; received {project_name!r}"
        )
    from evidently.ui.workspace import Workspace

    Path(workspace_dir).mkdir(parents=True, exist_ok=True)
    workspace = Workspace(str(workspace_dir))
    found = workspace.search_project(project_name)
    project = found[0] if found else _create_project(workspace, project_name)
    ref = workspace.add_run(project.id, result.snapshot)
    logger.info(
        "drift run %s stored in workspace %s, project %r",
        ref.id,
        workspace_dir,
        project_name,
    )
    return str(ref.id)


def _create_project(workspace, project_name: str):
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    project = workspace.create_project(
        project_name, description=f"Data drift of {project_name} records"
    )
    project.dashboard.add_panel(
        line_plot_panel(
            title="Share of drifted columns",
            values=[
                PanelMetric(
                    legend="share",
                    metric="DriftedColumnsCount",
                    metric_labels={"value_type": "share"},
                )
            ],
        )
    )
    return project


__all__ = [
    "EXCLUDED_COLUMNS",
    "Decision",
    "DriftConfig",
    "DriftResult",
    "add_to_workspace",
    "compute_drift",
    "decide_retrain",
    "log_scale_columns",
    "screen_columns",
]
