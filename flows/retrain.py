"""The retrain flow: one dataset and task, from validation to promotion."""

from __future__ import annotations

import logging
import os
import socket
import time

from prefect import flow

from flows.package import package_champions
from flows.steps import (
    BranchOptions,
    build_docs,
    judge_challenger,
    prepare_dataset,
    register_and_promote,
    train_candidates,
    validate_dataset,
)

logger = logging.getLogger(__name__)


class BranchFailed(RuntimeError):
    """A dataset's branch failed; carries how long it ran before failing."""

    def __init__(self, message: str, seconds: float = 0.0):
        super().__init__(message, seconds)
        self.message = message
        self.seconds = seconds

    def __str__(self) -> str:
        return self.message


def run_branch(dataset: str, tasks: tuple[str, ...], options: BranchOptions) -> dict:
    """Validate, prepare, then train, judge and register each task of a dataset.

    A validation failure stops the branch before any training. A task that
    fails does not stop the other task; the branch then fails naming it.

    Raises:
        BranchFailed: Validation or at least one task failed; champions of the
            failed parts are untouched.
    """
    from ids.promotion import check_tasks

    started = time.perf_counter()
    tasks = check_tasks(tasks)
    try:
        validate_dataset(dataset, options.data_dir, options.context_root)
        prepared = prepare_dataset(dataset, options)
    except Exception as exc:
        raise BranchFailed(str(exc), time.perf_counter() - started) from exc

    outcomes, errors = {}, {}
    for task_name in tasks:
        try:
            result = train_candidates(dataset, task_name, prepared, options)
            judgement = judge_challenger(result, prepared, options)
            outcomes[task_name] = register_and_promote(result, judgement)
        except Exception as exc:  # the other task still runs; reported below
            logger.exception("%s %s failed", dataset, task_name)
            errors[task_name] = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    if errors:
        listed = "; ".join(f"{t}: {e}" for t, e in errors.items())
        raise BranchFailed(f"{dataset}: {listed}", seconds)
    return {
        "dataset": dataset,
        "outcome": "ok",
        "seconds": round(seconds, 2),
        "incoming_rows": prepared.incoming_rows,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "tasks": outcomes,
        "promoted": [
            f"{dataset}/{t}" for t, outcome in outcomes.items() if outcome["promoted"]
        ],
    }


@flow(name="retrain")
def retrain(
    dataset: str,
    task: str,
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
    build_bento: bool | None = None,
    service_url: str | None = None,
) -> dict:
    """Validate, prepare (base file plus incoming rows), train the candidates,
    pick the winner by validation macro-F1, score the champion on the winner's
    test split, register the winner and promote it only if it is better.

    Args:
        dataset: Catalog name, e.g. ``"network"``.
        task: ``"binary"`` or ``"multiclass"``.
        models: Candidate models (default: all); Keras ones once per optimizer.
        max_rows: Stratified sample of the base file (default: every row).
        min_gain: How much macro-F1 the challenger must gain to be promoted.
        context_root: Great Expectations project (default: ``expectations/``).
        build_bento: Build a bento after a promotion (default ``$IDS_BUILD_BENTO``).
        service_url: Service to reload after a promotion (default
            ``$IDS_SERVICE_URL``).
    """
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
    build_docs(context_root)
    outcome = run_branch(dataset, (task,), options)
    if outcome["promoted"]:
        outcome["package"] = package_champions(
            outcome["promoted"], build_bento, service_url
        )
    return outcome
