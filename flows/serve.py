"""Deployments served here: nightly/scheduled, retrain/on-demand, monitor/hourly."""

from __future__ import annotations

import logging
import os

from flows.monitor import MONITOR_CRON, monitor
from flows.nightly import nightly
from flows.retrain import retrain

logger = logging.getLogger(__name__)

NIGHTLY_CRON = "0 2 * * *"
CRON_ENV = "IDS_NIGHTLY_CRON"
TIMEZONE_ENV = "IDS_TIMEZONE"
NIGHTLY_DEPLOYMENT = "nightly/scheduled"
RETRAIN_DEPLOYMENT = "retrain/on-demand"
MONITOR_DEPLOYMENT = "monitor/hourly"
MONITOR_CRON_ENV = "IDS_MONITOR_CRON"


def deployments(
    cron: str | None = None,
    timezone: str | None = None,
    work_pool_name: str | None = None,
) -> list:
    """The runner deployments: nightly schedule, on-demand retraining, monitoring.

    Args:
        cron: Nightly schedule (default ``$IDS_NIGHTLY_CRON`` or 02:00 daily).
        timezone: IANA name of the schedule's zone (default ``$IDS_TIMEZONE``
            or UTC).
        work_pool_name: Only for ``.apply()``; ``prefect.serve`` needs none.
    """
    from prefect.schedules import Cron

    cron = cron or os.environ.get(CRON_ENV) or NIGHTLY_CRON
    timezone = timezone or os.environ.get(TIMEZONE_ENV) or "UTC"
    logger.info("nightly schedule %r in %s", cron, timezone)
    return [
        nightly.to_deployment(
            name="scheduled",
            schedule=Cron(cron, timezone=timezone),
            description="Validate and retrain every dataset, both tasks; promote "
            "a winner only if it beats the champion.",
            tags=["ids", "nightly"],
            work_pool_name=work_pool_name,
        ),
        retrain.to_deployment(
            name="on-demand",
            description="Retrain one dataset and task now (dataset, task).",
            tags=["ids", "on-demand"],
            work_pool_name=work_pool_name,
        ),
        monitor.to_deployment(
            name="hourly",
            schedule=Cron(
                os.environ.get(MONITOR_CRON_ENV) or MONITOR_CRON, timezone=timezone
            ),
            description="Drift of the network records scored in the last hour "
            "against the champion's reference; starts retrain/on-demand on drift.",
            tags=["ids", "monitoring"],
            work_pool_name=work_pool_name,
        ),
    ]


def main() -> None:
    """Entry point of ``python -m flows.serve``: serve the three deployments."""
    from prefect import serve

    from ids.settings import ensure_home

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    ensure_home()
    serve(*deployments())


if __name__ == "__main__":
    main()
