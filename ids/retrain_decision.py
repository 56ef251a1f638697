"""Whether a drift result calls for retraining: window size, drift share, cooldown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ids.drift_config import DriftConfig
from ids.monitoring import DriftResult


@dataclass(frozen=True)
class Decision:
    """Whether to retrain, and why, in words an operator can act on."""

    retrain: bool
    reason: str


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
