"""What a monitoring run shows in the Prefect UI, as plain markdown and table rows."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

TABLE_COLUMNS = ("column", "method", "score", "threshold", "drifted", "note")


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def column_rows(result) -> list[dict[str, str]]:
    """One row per reference column (and the predictions): method, score, verdict.

    Columns that were not compared keep ``n/a`` scores and say why in ``note``.
    """
    if result is None:
        return []
    rows = []
    for entry in result.columns:
        rows.append(
            {
                "column": entry["column"],
                "method": entry["method"] or "n/a",
                "score": _number(entry["score"]),
                "threshold": _number(entry["threshold"]),
                "drifted": "yes" if entry["drifted"] else "no",
                "note": entry["note"] or "compared",
            }
        )
    prediction = result.prediction_drift
    if prediction:
        rows.append(
            {
                "column": f"{prediction['column']} (predictions)",
                "method": prediction["method"] or "n/a",
                "score": _number(prediction["score"]),
                "threshold": _number(prediction["threshold"]),
                "drifted": "yes" if prediction["drifted"] else "no",
                "note": "predicted classes of the champion",
            }
        )
    return rows


def summary_markdown(
    dataset: str,
    task: str,
    *,
    since: datetime | None,
    until: datetime,
    records: int,
    champion: str | None,
    result,
    decision,
    trigger: str,
    notes: list[str] | None = None,
    evidently_link: str | None = None,
) -> str:
    """The run's headline: window, drift share, drifted columns, decision, reason."""
    verdict = "RETRAIN" if decision.retrain else "no retrain"
    start = since.isoformat(timespec="seconds") if since else "the first record"
    lines = [
        f"## Drift of {dataset} ({task}): {verdict}",
        "",
        f"**Decision:** {verdict}. **Reason:** {decision.reason}",
        "",
        "| | |",
        "|---|---|",
        f"| window | {start} to {until.isoformat(timespec='seconds')} |",
        f"| records in window | {records:,} |",
        f"| champion | `{champion or 'none'}` |",
    ]
    if result is not None:
        compared = result.compared_columns
        lines += [
            f"| drift share | {result.drift_share:.3f} "
            f"({len(result.drifted_columns)} of {len(compared)} compared columns) |",
            f"| rows compared (reference / window) | {result.rows_compared[0]:,} / "
            f"{result.rows_compared[1]:,} |",
            f"| seconds | {result.seconds:.1f} |",
        ]
        prediction = result.prediction_drift
        if prediction:
            state = "drifted" if prediction["drifted"] else "stable"
            lines.append(
                f"| predicted classes | {state} ({prediction['method']}: "
                f"{_number(prediction['score'])}) |"
            )
    lines.append(f"| trigger | {trigger} |")
    if result is not None:
        drifted = ", ".join(f"`{c}`" for c in result.drifted_columns) or "none"
        lines += ["", f"**Drifted columns:** {drifted}"]
        skipped = result.skipped
        if skipped:
            listed = "; ".join(f"`{c}`: {why}" for c, why in skipped.items())
            lines += ["", f"**Not compared ({len(skipped)}):** {listed}"]
    if notes:
        lines += ["", "**Notes:**", ""] + [f"- {note}" for note in notes]
    if result is not None and result.html_path is not None:
        lines += ["", f"Report: `{result.html_path}`"]
    if evidently_link:
        lines += ["", f"History in the Evidently UI: {evidently_link}"]
    return "\n".join(lines) + "\n"


def report_link(html_path: Path | None) -> tuple[str, str] | None:
    """(file URL, link text) of the HTML report, or None when none was written."""
    if html_path is None:
        return None
    path = Path(html_path).resolve()
    return path.as_uri(), f"Evidently drift report ({path.name})"


def table_description(dataset: str, task: str, result) -> str:
    """One line above the table in the UI."""
    if result is None:
        return f"{dataset} {task}: no column compared"
    return (
        f"{dataset} {task}: drift per column, share {result.drift_share:.3f} "
        f"on {result.rows_current:,} records"
    )
