"""The monitoring flow: drift of the last window of scored records, and the trigger.

Hourly (deployment ``monitor/hourly``) and on demand: read the inference log
since the last run, compare it with the champion's reference sample, keep the
Evidently report and snapshot, show the verdict in the Prefect UI, and start
``retrain/on-demand`` when the drift calls for it. :func:`judge_window` is the
work without Prefect; the benchmark calls it too.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import artifact_key
from ids.drift_artifacts import (
    column_rows,
    report_link,
    summary_markdown,
    table_description,
)
from ids.monitoring import DriftConfig, compute_drift
from ids.retrain_decision import Decision, decide_retrain

logger = logging.getLogger(__name__)

MONITOR_DEPLOYMENT = "monitor/hourly"
RETRAIN_DEPLOYMENT = "retrain/on-demand"
TRIGGERS = ("deployment", "inline", "none")
PREDICTION = "predicted_class"
EVIDENTLY_URL_ENV = "IDS_EVIDENTLY_URL"
# Without a previous run the window reaches back one schedule period.
FIRST_WINDOW = timedelta(minutes=60)
# A window is sampled to this many rows before Evidently: 100k records against
# a 50k reference take 6.5 s instead of 9.7 s (25k rows) on the shared 2-core
# box, and no decision of benchmarks/drift.py changes (results/drift.json).
WINDOW_SAMPLE_ROWS = 10_000


def monitor_config(**overrides) -> DriftConfig:
    """The drift settings of the monitoring flow: the core's, window sampled."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(DriftConfig(max_current_rows=WINDOW_SAMPLE_ROWS), **given)


def monitoring_dir() -> Path:
    """Monitoring state and caches: ``home/monitoring``."""
    from ids.settings import project_home

    return project_home() / "monitoring"


def workspace_dir() -> Path:
    """The Evidently workspace that ``evidently ui`` shows: ``home/evidently``."""
    from ids.settings import project_home

    return project_home() / "evidently"


def read_state(dataset: str, task_name: str) -> dict:
    """What the last run of ``dataset/task`` left: window end, last retrain."""
    path = monitoring_dir() / "state.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf8")).get(f"{dataset}/{task_name}", {})


def write_state(dataset: str, task_name: str, **entry) -> dict:
    """Update the state of ``dataset/task`` (locked, written atomically)."""
    folder = monitoring_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "state.json"
    with open(folder / "state.json.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text(encoding="utf8")) if path.is_file() else {}
        merged = {**state.get(f"{dataset}/{task_name}", {}), **entry}
        state[f"{dataset}/{task_name}"] = merged
        fd, staging = tempfile.mkstemp(dir=folder, prefix=".state.")
        with os.fdopen(fd, "w", encoding="utf8") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
        os.replace(staging, path)
    return merged


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class WindowVerdict:
    """One judged window: bounds, drift, the decision and notes for the operator."""

    since: datetime | None
    until: datetime
    records: int
    result: object
    decision: Decision
    notes: list[str] = field(default_factory=list)
    judged: bool = False


def predicted_classes(log: pd.DataFrame, task_name: str) -> pd.Series | None:
    """The champion's class per logged record, or None if the log lacks it."""
    if task_name == "multiclass" and "attack_type" in log:
        return log["attack_type"].astype(object)
    if task_name == "binary" and "is_attack" in log:
        return log["is_attack"].map({True: "attack", False: "normal"}).astype(object)
    return None


def reference_with_predictions(detector, tag: str) -> pd.DataFrame:
    """The champion's reference sample plus its own predicted class per row.

    Predictions are cached per champion tag, so hourly runs pay for them once.
    """
    reference = detector.reference[detector.input_columns].copy()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", tag)
    cache = monitoring_dir() / "reference" / f"{safe}.parquet"
    if cache.is_file():
        cached = pd.read_parquet(cache)[PREDICTION]
        if len(cached) == len(reference):
            reference[PREDICTION] = cached.to_numpy()
            return reference
    proba = detector.predict_proba_typed(reference)
    names = np.asarray(detector.classes, dtype=object)
    reference[PREDICTION] = names[np.argmax(proba, axis=1)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    reference[[PREDICTION]].to_parquet(cache, index=False)
    return reference


def judge_window(
    dataset: str,
    task_name: str,
    reference: pd.DataFrame,
    *,
    since: datetime | None,
    until: datetime,
    config: DriftConfig,
    report_path: Path | None = None,
    last_retrain_at: datetime | None = None,
    log_root: Path | None = None,
    column_kinds: dict[str, str] | None = None,
) -> WindowVerdict:
    """Read the window from the inference log, measure drift and decide.

    Bad input never raises: an empty window, one under ``config.min_records``,
    records lacking columns or with all-null columns give a verdict without a
    retrain and notes saying what was wrong.
    """
    from ids.inference_log import read_log

    log = read_log(dataset, since, until, root=log_root)
    records = len(log)
    notes: list[str] = []
    if records == 0:
        reason = (
            "empty window: no records were scored between "
            + (
                f"{since.isoformat(timespec='seconds')} and "
                if since
                else "the first record and "
            )
            + f"{until.isoformat(timespec='seconds')}; nothing to judge"
        )
        return WindowVerdict(since, until, 0, None, Decision(False, reason))
    if records < config.min_records:
        reason = (
            f"window of {records} records is under min_records={config.min_records}; "
            "drift is not judged on so few records. They stay in the next window."
        )
        return WindowVerdict(since, until, records, None, Decision(False, reason))

    inputs = [c for c in reference.columns if c != PREDICTION]
    missing = [c for c in inputs if c not in log.columns]
    if missing:
        notes.append(
            f"log records lack {len(missing)} reference column(s): "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}; "
            "those are not compared (was the log written by another schema?)"
        )
    current = log.reindex(columns=[c for c in inputs if c in log.columns])
    # A column nearly always filled in the reference but empty in the whole
    # window is a broken feed, not drift (rare columns are often empty).
    empty = [
        c
        for c in current.columns
        if current[c].isna().all() and reference[c].notna().mean() >= 0.5
    ]
    if empty:
        notes.append(f"all-null column(s) in the window, not compared: {empty}")
    predicted = predicted_classes(log, task_name)
    has_prediction = predicted is not None and PREDICTION in reference
    if has_prediction:
        current[PREDICTION] = predicted.to_numpy()
    else:
        notes.append("no predicted classes to compare (log or reference lacks them)")
    result = compute_drift(
        reference,
        current,
        column_kinds,
        config,
        report_path,
        prediction_column=PREDICTION if has_prediction else None,
        timestamp=until,
    )
    decision = decide_retrain(result, config, last_retrain_at, until)
    if (missing or empty) and decision.retrain:
        decision = Decision(
            False,
            "bad input, no retrain: the window's records lack columns or carry "
            f"empty ones (see notes); fix the feed first. Measured: {decision.reason}",
        )
    return WindowVerdict(since, until, records, result, decision, notes, True)


@task(name="judge-window", cache_policy=NO_CACHE)
def judge_task(
    dataset: str,
    task_name: str,
    pointer: dict,
    since: datetime,
    until: datetime,
    config: DriftConfig,
    report_path: Path,
) -> WindowVerdict:
    """Load the champion, add its predictions to its reference, judge the window."""
    from ids.catalog import CATEGORICAL, get_spec
    from ids.data import input_columns
    from ids.detector import Detector

    detector = Detector.load(pointer["path"])
    if detector.reference is None or detector.reference.empty:
        reason = (
            f"champion {pointer['tag']} has no reference sample; retrain and "
            "promote one (nightly or retrain flow) before monitoring"
        )
        return WindowVerdict(since, until, 0, None, Decision(False, reason))
    spec = get_spec(dataset)
    kinds = {
        c: CATEGORICAL if spec.columns.get(c) == CATEGORICAL else "numerical"
        for c in input_columns(spec)
    }
    reference = reference_with_predictions(detector, pointer["tag"])
    state = read_state(dataset, task_name)
    return judge_window(
        dataset,
        task_name,
        reference,
        since=since,
        until=until,
        config=config,
        report_path=report_path,
        last_retrain_at=_parse_time(state.get("last_retrain_at")),
        column_kinds=kinds,
    )


def _evidently_link(verdict: WindowVerdict, project: str) -> str | None:
    if verdict.result is None or verdict.result.snapshot is None:
        return None
    from ids.drift_workspace import add_to_workspace

    try:
        run_id = add_to_workspace(verdict.result, workspace_dir(), project)
    except Exception as exc:  # the UI history is a convenience; the run goes on
        logger.warning("snapshot not stored in the Evidently workspace: %s", exc)
        verdict.notes.append(f"snapshot not stored in the Evidently workspace: {exc}")
        return None
    base = os.environ.get(EVIDENTLY_URL_ENV, "http://127.0.0.1:8000").rstrip("/")
    return f"{base} (project `{project}`, run `{run_id}`)"


def publish(dataset, task_name, verdict, champion_tag, trigger, evidently) -> None:
    """Markdown, table and report-link artifacts of one monitoring run."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    create_markdown_artifact(
        markdown=summary_markdown(
            dataset,
            task_name,
            since=verdict.since,
            until=verdict.until,
            records=verdict.records,
            champion=champion_tag,
            result=verdict.result,
            decision=verdict.decision,
            trigger=trigger,
            notes=verdict.notes,
            evidently_link=evidently,
        ),
        key=artifact_key("drift", dataset, task_name),
        description=f"{dataset} {task_name}: {verdict.decision.reason}"[:500],
    )
    rows = column_rows(verdict.result)
    if rows:
        create_table_artifact(
            table=rows,
            key=artifact_key("drift-columns", dataset, task_name),
            description=table_description(dataset, task_name, verdict.result),
        )
    link = report_link(verdict.result.html_path if verdict.result else None)
    if link is not None:
        create_link_artifact(
            link=link[0],
            link_text=link[1],
            key=artifact_key("drift-report", dataset, task_name),
            description=f"{dataset} {task_name}: Evidently data drift report",
        )


def start_retrain(dataset, task_name, mode: str, parameters: dict) -> str:
    """Start the retrain the way ``mode`` says; returns what was started."""
    parameters = {"dataset": dataset, "task": task_name, **parameters}
    if mode == "deployment":
        from prefect.deployments import run_deployment

        run = run_deployment(RETRAIN_DEPLOYMENT, parameters=parameters, timeout=0)
        logger.info("started %s: flow run %s", RETRAIN_DEPLOYMENT, run.id)
        return f"{RETRAIN_DEPLOYMENT} flow run {run.id}"
    if mode == "inline":
        from flows.retrain import retrain

        state = retrain(**parameters, return_state=True)
        outcome = state.result(raise_on_failure=False)
        if not state.is_completed():
            return f"inline retrain ended {state.name}: {state.message}"
        return f"inline retrain: promoted {outcome.get('promoted') or 'nothing'}"
    return "not started (trigger='none')"


@flow(name="monitor")
def monitor(
    dataset: str = "network",
    task: str = "multiclass",
    window_minutes: float | None = None,
    min_records: int | None = None,
    drift_share_threshold: float | None = None,
    cooldown_minutes: float | None = None,
    trigger: str = "deployment",
    retrain_parameters: dict | None = None,
) -> dict:
    """Judge the records scored since the last run against the champion's
    reference sample; start ``retrain/on-demand`` when the drift share (or the
    predicted classes) drifts on a full window outside the cooldown.

    Args:
        dataset: Catalog name.
        task: Whose champion's reference and predictions are compared.
        window_minutes: Judge the last this many minutes instead of the
            records since the last run.
        min_records, drift_share_threshold, cooldown_minutes: Override the
            ``DriftConfig`` defaults.
        trigger: ``"deployment"`` (run_deployment), ``"inline"`` (the retrain
            flow as a subflow here) or ``"none"`` (judge only).
        retrain_parameters: Extra parameters of the retrain run.
    """
    from ids import registry
    from ids.catalog import TASKS, get_spec
    from ids.settings import ensure_home, reports_dir

    get_spec(dataset)
    if task not in TASKS or trigger not in TRIGGERS:
        raise ValueError(
            f"task={task!r}, trigger={trigger!r}; expected a task of {list(TASKS)} "
            f"and a trigger of {list(TRIGGERS)}"
        )
    ensure_home()
    config = monitor_config(
        min_records=min_records,
        drift_share_threshold=drift_share_threshold,
        cooldown_minutes=cooldown_minutes,
    )
    until = datetime.now(UTC)
    state = read_state(dataset, task)
    if window_minutes is not None:
        since = until - timedelta(minutes=window_minutes)
    else:
        since = _parse_time(state.get("window_start")) or until - FIRST_WINDOW

    pointer = registry.champion(dataset, task)
    if pointer is None:
        verdict = WindowVerdict(
            since,
            until,
            0,
            None,
            Decision(
                False,
                f"no champion for {dataset}/{task}; train and promote one (nightly "
                "or retrain flow) before monitoring",
            ),
        )
        publish(dataset, task, verdict, None, "none", None)
        return {"retrain": False, "reason": verdict.decision.reason, "records": 0}

    stamp = until.strftime("%Y%m%dT%H%M%SZ")
    report = reports_dir() / "drift" / dataset / f"{stamp}-{task}.html"
    started = time.perf_counter()
    verdict = judge_task(dataset, task, pointer, since, until, config, report)
    evidently = _evidently_link(verdict, dataset)
    triggered = "none"
    if verdict.decision.retrain:
        triggered = start_retrain(dataset, task, trigger, retrain_parameters or {})
        verdict.notes.append(f"retrain: {triggered}")
    publish(dataset, task, verdict, pointer["tag"], triggered, evidently)

    # A window too small to judge stays open, so its records count next time.
    next_start = until if verdict.judged or verdict.records == 0 else since
    entry = {
        "window_start": next_start.isoformat(),
        "last_run_at": until.isoformat(),
        "last_decision": verdict.decision.reason,
    }
    if verdict.decision.retrain and trigger != "none":
        entry["last_retrain_at"] = until.isoformat()
    write_state(dataset, task, **entry)
    result = verdict.result
    return {
        "retrain": verdict.decision.retrain,
        "reason": verdict.decision.reason,
        "trigger": triggered,
        "records": verdict.records,
        "drift_share": None if result is None else result.drift_share,
        "drifted_columns": [] if result is None else result.drifted_columns,
        "report": None if result is None else str(result.html_path),
        "seconds": round(time.perf_counter() - started, 2),
    }
