"""Deployments served here: nightly/scheduled, retrain/on-demand, monitor/hourly."""

from __future__ import annotations

import logging
import os

from flows.monitor import monitor
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
MONITOR_DATASETS_ENV = "IDS_MONITOR_DATASETS"
# Minutes between the default hourly runs of successive datasets, so that
# their Evidently reports are not all computed at once.
MONITOR_STAGGER_MIN = 5


def monitored_datasets() -> list[str]:
    """What ``monitor/hourly`` watches: ``$IDS_MONITOR_DATASETS`` (comma-separated
    catalog names), else every dataset whose files are in the data folder (the
    ones the nightly flow trains), else the network set.
    """
    from ids.catalog import find_datasets, get_spec

    value = os.environ.get(MONITOR_DATASETS_ENV, "")
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        get_spec(name)  # an unknown name fails here, naming the catalog
    if names:
        return names
    try:
        found = find_datasets()
    except FileNotFoundError:
        logger.warning("no data folder here; monitor/hourly watches network only")
        return ["network"]
    # The network set first: it gets minute 0.
    return sorted(found, key=lambda name: (name != "network", name)) or ["network"]


def monitor_schedules(timezone: str, datasets: list[str] | None = None) -> list:
    """One hourly schedule per watched dataset, each with its ``dataset`` parameter.

    ``$IDS_MONITOR_CRON`` sets one cron for all; by default dataset *i* runs at
    minute 5*i of every hour.
    """
    from prefect.schedules import Cron

    datasets = datasets or monitored_datasets()
    shared = os.environ.get(MONITOR_CRON_ENV)
    schedules = []
    for position, dataset in enumerate(datasets):
        minute = position * MONITOR_STAGGER_MIN % 60
        cron = shared or f"{minute} * * * *"
        schedules.append(
            Cron(
                cron,
                timezone=timezone,
                parameters={"dataset": dataset},
                slug=f"hourly-{dataset}",
            )
        )
    return schedules


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
            schedules=monitor_schedules(timezone),
            description="Drift of the records of each watched dataset scored since "
            "its last run against the champion's reference (one schedule per "
            "dataset); starts retrain/on-demand on drift.",
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
