"""The monitoring flow end to end: real replay rows, service and Prefect server."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
from conftest import REPO_ROOT, bentoml_serve

from ids import registry
from ids.drift_artifacts import TABLE_COLUMNS
from ids.replay import (
    SHIFT_TYPES,
    as_records,
    drop_types,
    replay_split,
    scenario_rows,
    send,
    write_incoming,
)

pytestmark = pytest.mark.slow

# 20,000 rows keep a replay split of 1,900 rows: 1,338 of the types the
# champion saw, 562 of the three it never saw.
MAX_ROWS = 20_000
# Under the calibrated 1,000 (benchmarks/results/drift_calibration.md), to keep
# the slice small; the stable window here stays at 0.00-0.03.
MIN_RECORDS = 400
RATE = 2_000.0


@pytest.fixture(scope="module", autouse=True)
def drain_prefect_workers():
    """Send queued logs and events while the server is still up."""
    yield
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=30, at_exit=False)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A project home of this module: registry, log, incoming, state, reports."""
    root = tmp_path_factory.mktemp("monitor-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IDS_HOME", str(root))
        for name in ("IDS_REGISTRY_DIR", "IDS_INFERENCE_LOG", "IDS_INCOMING_DIR"):
            patch.delenv(name, raising=False)
        yield root


@pytest.fixture(scope="module")
def loaded():
    from ids.data import load_dataset

    return load_dataset("network", max_rows=MAX_ROWS)


@pytest.fixture(scope="module")
def champion(home, loaded, tmp_path_factory) -> dict:
    """A dt multiclass champion trained without the shift types, promoted."""
    from ids.training import TrainingConfig, train_dataset

    seen = drop_types(loaded, SHIFT_TYPES)
    config = TrainingConfig(models=("dt",), strict=False)
    run = train_dataset("network", "multiclass", config, loaded=seen)
    (folder,) = run.detectors.values()
    tag = registry.register_detector(folder)
    registry.promote_champion("network", "multiclass", tag, "test champion", {})
    return {"tag": tag, "seen": seen}


@pytest.fixture(scope="module")
def service(champion, home, tmp_path_factory) -> str:
    """URL of one real `bentoml serve` of the service (one worker)."""
    log_path = tmp_path_factory.mktemp("monitor-serve") / "serve.log"
    with bentoml_serve(
        log_path, IDS_RELOAD_INTERVAL_S="0.5", IDS_SERVE_WORKERS="1"
    ) as url:
        yield url


@pytest.fixture(scope="module")
def pools(champion, loaded) -> dict[str, pd.DataFrame]:
    """Replay rows: stable from the champion's own split, shift of unseen types."""
    stable = replay_split(champion["seen"])
    return {
        "stable": scenario_rows(stable, "stable", 5_000),
        "shift": scenario_rows(replay_split(loaded), "shift", 5_000),
    }


def _artifacts(flow_run_id) -> dict:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    return {artifact.key: artifact for artifact in found}


def _monitor(**kwargs):
    from flows.monitor import monitor

    state = monitor(
        "network", "multiclass", min_records=MIN_RECORDS, return_state=True, **kwargs
    )
    assert state.is_completed(), state.message
    return state.result(), _artifacts(state.state_details.flow_run_id)


@pytest.fixture(scope="module")
def runs(prefect_server, service, pools, home) -> dict:
    """Stable replay, monitor; shift replay, monitor (deployment), again
    (cooldown), again without cooldown and with the retrain inline."""
    from flows.serve import deployments

    for deployment in deployments():
        deployment.apply()
    out = {}
    stable = pools["stable"]
    out["stable_replay"] = send(service, "network", as_records(stable, "network"), RATE)
    write_incoming(stable, "network")
    out["stable"] = _monitor()

    shift_started = time.time()
    shift = pools["shift"]
    out["shift_replay"] = send(service, "network", as_records(shift, "network"), RATE)
    write_incoming(shift, "network")
    out["shift"] = _monitor()

    def since_shift() -> float:
        return (time.time() - shift_started) / 60 + 0.05

    out["cooldown"] = _monitor(window_minutes=since_shift())
    gx_root = home / "gx"
    shutil.copytree(REPO_ROOT / "expectations", gx_root)
    out["inline"] = _monitor(
        window_minutes=since_shift(),
        cooldown_minutes=0,
        trigger="inline",
        retrain_parameters={
            "models": ["dt"],
            "max_rows": MAX_ROWS,
            "strict": False,
            "context_root": str(gx_root),
            "service_url": service,
        },
    )
    return out


def test_monitor_stable_replay_does_not_trigger(runs):
    outcome, artifacts = runs["stable"]

    assert outcome["records"] == runs["stable_replay"].sent
    assert not outcome["retrain"], outcome["reason"]
    assert outcome["reason"].startswith("no drift")
    assert outcome["drift_share"] < 0.10
    markdown = artifacts["drift-network-multiclass"].data
    assert "no retrain" in markdown and "**Drifted columns:**" in markdown


def test_monitor_shift_replay_starts_the_retrain_deployment(runs):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    outcome, _ = runs["shift"]

    assert outcome["retrain"], outcome["reason"]
    assert outcome["drift_share"] >= 0.10
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("retrain/on-demand")
        flow_runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=[deployment.name])
            )
        )
    assert len(flow_runs) == 1
    assert flow_runs[0].parameters["dataset"] == "network"
    assert flow_runs[0].parameters["task"] == "multiclass"
    assert str(flow_runs[0].id) in outcome["trigger"]


def test_monitor_shift_artifacts_read_back_through_the_api(runs):
    outcome, artifacts = runs["shift"]

    keys = {
        "drift-network-multiclass",
        "drift-columns-network-multiclass",
        "drift-report-network-multiclass",
    }
    assert keys <= set(artifacts)
    markdown = artifacts["drift-network-multiclass"].data
    assert "RETRAIN" in markdown and "retrain/on-demand flow run" in markdown
    table = json.loads(artifacts["drift-columns-network-multiclass"].data)
    assert tuple(table[0]) == TABLE_COLUMNS
    drifted = {row["column"] for row in table if row["drifted"] == "yes"}
    assert drifted == set(outcome["drifted_columns"]) | (
        {"predicted_class (predictions)"} & drifted
    )
    assert {row["note"] for row in table if row["column"] == "http_uri"} == {
        "excluded: free text or identifier"
    }
    link = artifacts["drift-report-network-multiclass"].data
    assert "(file://" in link and link.endswith(".html)")
    report = outcome["report"]
    assert os.path.getsize(report) > 10_000


def test_monitor_respects_the_cooldown(runs):
    outcome, artifacts = runs["cooldown"]

    assert not outcome["retrain"]
    assert outcome["reason"].startswith("cooldown:")
    assert "cooldown" in artifacts["drift-network-multiclass"].data


def test_monitor_inline_retrain_promotes_and_the_service_serves_it(
    runs, service, pools
):
    outcome, _ = runs["inline"]
    before = runs["shift_replay"].models

    assert outcome["retrain"], outcome["reason"]
    assert "promoted ['network/multiclass']" in outcome["trigger"]
    new_tag = registry.champion("network", "multiclass")["tag"]
    assert new_tag not in before
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = httpx.get(f"{service}/ids/champions", timeout=10).json()
        if answer["champions"].get("network", {}).get("multiclass") == new_tag:
            break
        time.sleep(0.5)
    probe = as_records(pools["shift"].head(3), "network")
    body = httpx.post(
        f"{service}/score", json={"dataset": "network", "records": probe}, timeout=30
    ).json()
    assert body["models"]["multiclass"] == new_tag


def test_monitor_window_state_advances_after_a_judged_window(runs, home):
    from flows.monitor import read_state

    state = read_state("network", "multiclass")

    start = datetime.fromisoformat(state["window_start"])
    assert start == datetime.fromisoformat(state["last_run_at"])
    assert datetime.now(UTC) - start < timedelta(minutes=10)
    assert "last_retrain_at" in state


@pytest.mark.parametrize(
    ("log", "message"),
    [
        (None, "empty window: no records were scored"),
        ("small", "window of 50 records is under min_records=400"),
        ("missing", "log records lack 20 reference column"),
        ("all-null", "all-null column(s) in the window, not compared: ['duration']"),
    ],
    ids=["empty", "under-min-records", "missing-columns", "all-nan-column"],
)
def test_judge_window_bad_input_gives_no_trigger_and_says_why(
    champion, pools, tmp_path, log, message
):
    from flows.monitor import judge_window, reference_with_predictions
    from ids.detector import Detector
    from ids.inference_log import write_batch
    from ids.monitoring import DriftConfig

    detector = Detector.load(registry.champion_path("network", "multiclass"))
    reference = reference_with_predictions(detector, "probe")
    window = pools["shift"][detector.input_columns].head(450).copy()
    if log == "small":
        window = window.head(50)
    if log == "missing":
        window = window.drop(columns=detector.input_columns[:20])
    if log == "all-null":
        window["duration"] = float("nan")
    now = datetime.now(UTC)
    if log is not None:
        write_batch("network", {c: window[c].to_numpy() for c in window}, root=tmp_path)

    verdict = judge_window(
        "network",
        "multiclass",
        reference,
        since=now - timedelta(minutes=5),
        until=now + timedelta(minutes=1),
        config=DriftConfig(min_records=MIN_RECORDS),
        report_path=tmp_path / "report.html",
        log_root=tmp_path,
    )

    assert not verdict.decision.retrain
    text = verdict.decision.reason + " " + " ".join(verdict.notes)
    assert message in text
