"""Which task runner the nightly fan-out uses: threads here, or a Dask cluster."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

RUNNERS = ("thread", "dask")
RUNNER_ENV = "IDS_TASK_RUNNER"
DASK_ADDRESS_ENV = "IDS_DASK_ADDRESS"
WORKERS_ENV = "IDS_NIGHTLY_WORKERS"


def resolve_runner(
    runner: str | None = None,
    dask_address: str | None = None,
    workers: int | None = None,
) -> tuple[str, str | None, int]:
    """The runner kind, Dask address and worker count after env defaults.

    An explicit argument wins over ``$IDS_TASK_RUNNER``, ``$IDS_DASK_ADDRESS``
    and ``$IDS_NIGHTLY_WORKERS``; a Dask address alone selects Dask.
    """
    address = dask_address or os.environ.get(DASK_ADDRESS_ENV) or None
    kind = runner or os.environ.get(RUNNER_ENV) or ("dask" if address else "thread")
    if kind not in RUNNERS:
        raise ValueError(
            f"unknown task runner {kind!r}; expected one of {RUNNERS} "
            f"(argument runner= or ${RUNNER_ENV})"
        )
    if address and kind != "dask":
        raise ValueError(
            f"a Dask address ({address!r}) was given but the runner is {kind!r}; "
            f"unset ${DASK_ADDRESS_ENV} or choose runner='dask'"
        )
    count = workers if workers is not None else int(os.environ.get(WORKERS_ENV, 0))
    if count < 0:
        raise ValueError(f"workers must be >= 0 (0 = default), got {count}")
    # Keras keeps global state (seeds, graphs) per process, so threads of one
    # process train one dataset at a time unless asked otherwise.
    default = 1 if kind == "thread" else 2
    return kind, address, count or default


def make_task_runner(
    runner: str | None = None,
    dask_address: str | None = None,
    workers: int | None = None,
):
    """A task runner for ``flow.with_options(task_runner=...)``.

    ``"thread"`` is Prefect's thread pool; ``"dask"`` is prefect-dask's runner
    on the cluster at ``dask_address``, or else on a new local cluster of
    ``workers`` single-threaded worker processes.
    """
    kind, address, count = resolve_runner(runner, dask_address, workers)
    if kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        logger.info("nightly fan-out on %d thread(s)", count)
        return ThreadPoolTaskRunner(max_workers=count)

    from prefect_dask import DaskTaskRunner

    if address:
        logger.info("nightly fan-out on the Dask cluster at %s", address)
        return DaskTaskRunner(address=address)
    logger.info("nightly fan-out on a local Dask cluster of %d process(es)", count)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": count, "processes": True, "threads_per_worker": 1},
    )
