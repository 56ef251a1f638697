"""The nightly flow: every dataset found, both tasks, one branch per dataset."""

from __future__ import annotations

import logging

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.states import Failed

from flows.artifacts import publish_nightly
from flows.package import package_champions
from flows.retrain import BranchFailed, run_branch
from flows.runners import make_task_runner
from flows.steps import BranchOptions, build_docs

logger = logging.getLogger(__name__)

TASKS = ("binary", "multiclass")


@task(name="dataset-branch", cache_policy=NO_CACHE)
def dataset_branch(dataset: str, tasks: list[str], options: dict) -> dict:
    """One dataset's retraining, both tasks; fails alone if its data does."""
    return run_branch(dataset, tuple(tasks), BranchOptions(**options))


@flow(name="nightly-fan-out")
def fan_out(datasets: list[str], tasks: list[str], options: dict) -> dict[str, dict]:
    """Submit one branch per dataset and wait for all; never fails itself."""
    futures = {
        name: dataset_branch.with_options(task_run_name=f"branch-{name}").submit(
            name, tasks, options
        )
        for name in datasets
    }
    wait(list(futures.values()))

    summary = {}
    for name, future in futures.items():
        state = future.state
        if state.is_completed():
            summary[name] = future.result()
            continue
        error = state.result(raise_on_failure=False)
        seconds = error.seconds if isinstance(error, BranchFailed) else None
        reason = str(error) if isinstance(error, BaseException) else state.message
        summary[name] = {
            "dataset": name,
            "outcome": "failed",
            "seconds": None if seconds is None else round(seconds, 2),
            "reason": reason,
            "promoted": [],
        }
    return summary


@flow(name="nightly")
def nightly(
    datasets: list[str] | None = None,
    tasks: list[str] | None = None,
    models: list[str] | None = None,
    optimizers: list[str] | None = None,
    epochs: int = 10,
    batch_size: int = 512,
    max_rows: int | None = None,
    strict: bool = True,
    seed: int = 0,
    min_gain: float = 0.0,
    data_dir: str | None = None,
    incoming_dir: str | None = None,
    context_root: str | None = None,
    out_dir: str | None = None,
    runner: str | None = None,
    dask_address: str | None = None,
    workers: int | None = None,
    build_bento: bool | None = None,
    service_url: str | None = None,
):
    """Retrain every dataset found in the data folder, both tasks, in parallel
    branches; package once if anything was promoted. A dataset that fails keeps
    its champions; the run then ends Failed, naming each failed dataset and why.

    Args:
        datasets: Catalog names (default: every dataset whose file is present).
        tasks: Tasks to train (default: binary and multiclass).
        runner: ``"thread"`` or ``"dask"`` (default ``$IDS_TASK_RUNNER``, or
            dask when an address is set).
        dask_address: Scheduler of an existing Dask cluster (default
            ``$IDS_DASK_ADDRESS``); without one, dask starts a local cluster.
        workers: Threads or local Dask processes (default 1 thread, 2 processes).

    Other arguments are those of the ``retrain`` flow.
    """
    from ids.catalog import find_datasets
    from ids.promotion import check_tasks

    names = list(datasets) if datasets else list(find_datasets(data_dir))
    if not names:
        raise ValueError(
            f"no dataset files found in the data folder {data_dir or '$IDS_DATA_DIR'}"
            "; point data_dir or $IDS_DATA_DIR at the folder of Train_Test_datasets/"
        )
    options = BranchOptions(
        models=tuple(models) if models else None,
        optimizers=tuple(optimizers) if optimizers else None,
        epochs=epochs,
        batch_size=batch_size,
        max_rows=max_rows,
        strict=strict,
        seed=seed,
        min_gain=min_gain,
        data_dir=data_dir,
        incoming_dir=incoming_dir,
        context_root=context_root,
        out_dir=out_dir,
    )
    logger.info("nightly: %d dataset(s) %s, tasks %s", len(names), names, tasks)

    build_docs(context_root)
    branches = fan_out.with_options(
        task_runner=make_task_runner(runner, dask_address, workers)
    )
    summary = branches(names, list(check_tasks(tasks or TASKS)), options.as_dict())
    promoted = [p for entry in summary.values() for p in entry.get("promoted", [])]
    if promoted:
        package_champions(promoted, build_bento, service_url)
    publish_nightly(summary)

    failed = {n: e["reason"] for n, e in summary.items() if e["outcome"] != "ok"}
    if failed:
        listed = "; ".join(failed.values())
        return Failed(
            message=f"{len(failed)} of {len(names)} dataset(s) failed "
            f"({', '.join(failed)}): {listed}",
            data=summary,
        )
    return summary
