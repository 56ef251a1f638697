"""The Prefect flows end to end on small real slices, against a real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ids import registry
from ids.catalog import dataset_path, find_datasets, get_spec, resolve_data_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
SKLEARN_CANDIDATES = ["dt", "rf", "lr"]
SLICE = dict(max_rows=3000, strict=False)


@pytest.fixture(scope="module", autouse=True)
def drain_prefect_workers():
    """Send this module's queued logs and events while the server is still up.

    Left queued, Prefect's workers retry against the stopped server at exit,
    which holds the pytest process for a minute.
    """
    yield
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=30, at_exit=False)


@pytest.fixture(scope="module")
def gx_root(tmp_path_factory) -> str:
    """A throw-away copy of the Great Expectations project."""
    root = tmp_path_factory.mktemp("gx") / "expectations"
    shutil.copytree(REPO_ROOT / "expectations", root)
    return str(root)


@pytest.fixture(scope="module")
def module_registry(tmp_path_factory):
    """Champion pointers of this module's retrain runs, apart from other tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(registry.REGISTRY_DIR_ENV, str(tmp_path_factory.mktemp("reg")))
        yield


def data_copy(root: Path, datasets: list[str], rename: dict[str, tuple] = ()) -> str:
    """The real files of ``datasets`` in the official layout under ``root``.

    ``rename`` maps a dataset to (old column, new column) in its copy's header.
    """
    rename = dict(rename)
    for name in datasets:
        spec = get_spec(name)
        source = dataset_path(spec, resolve_data_dir())
        target = dataset_path(spec, root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if name not in rename:
            shutil.copyfile(source, target)
            continue
        old, new = rename[name]
        with open(source, encoding="utf-8-sig", newline="") as handle:
            header, rest = handle.readline(), handle.read()
        assert old in header.split(","), f"{old} not in the header of {source}"
        target.write_text(header.replace(old, new, 1) + rest, encoding="utf-8")
    return str(root)


def artifacts_of(flow_run_id) -> dict[str, object]:
    """The artifacts a flow run left, read back through the Prefect API, by key."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    return {artifact.key: artifact for artifact in found}


@pytest.mark.slow
def test_serve_deployments_register_nightly_schedule_and_on_demand(prefect_server):
    from prefect import get_client

    from flows.serve import deployments

    for deployment in deployments(timezone="Australia/Sydney"):
        deployment.apply()

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("nightly/scheduled")
        on_demand = client.read_deployment_by_name("retrain/on-demand")
        hourly = client.read_deployment_by_name("monitor/hourly")
    schedule = nightly.schedules[0].schedule
    assert schedule.cron == "0 2 * * *"
    assert schedule.timezone == "Australia/Sydney"
    assert nightly.schedules[0].active
    required = on_demand.parameter_openapi_schema["required"]
    assert set(required) == {"dataset", "task"}
    # One hourly schedule per dataset found in the real data folder, staggered.
    watched = {s.schedule.cron: s.parameters for s in hourly.schedules}
    assert sorted(p["dataset"] for p in watched.values()) == sorted(find_datasets())
    assert watched["0 * * * *"] == {"dataset": "network"}
    assert len(watched) == len(find_datasets())


def test_monitor_schedules_follow_the_setting(monkeypatch):
    from flows.serve import MONITOR_DATASETS_ENV, monitor_schedules

    monkeypatch.setenv(MONITOR_DATASETS_ENV, "fridge, network")
    monkeypatch.setenv("IDS_MONITOR_CRON", "30 * * * *")
    schedules = monitor_schedules("UTC")

    assert [s.parameters for s in schedules] == [
        {"dataset": "fridge"},
        {"dataset": "network"},
    ]
    assert {s.cron for s in schedules} == {"30 * * * *"}
    monkeypatch.setenv(MONITOR_DATASETS_ENV, "fridge,toaster")
    with pytest.raises(ValueError, match="unknown dataset .toaster."):
        monitor_schedules("UTC")


@pytest.mark.slow
def test_prefect_yaml_deploys_both_deployments_to_the_process_pool(prefect_server):
    from prefect import get_client

    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    for command in (
        ["work-pool", "create", "ids-process", "--type", "process", "--overwrite"],
        ["deploy", "--all"],
    ):
        done = subprocess.run(
            prefect + command, cwd=REPO_ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("nightly/scheduled")
        on_demand = client.read_deployment_by_name("retrain/on-demand")
        hourly = client.read_deployment_by_name("monitor/hourly")
    assert nightly.work_pool_name == on_demand.work_pool_name == "ids-process"
    watched = [s.parameters["dataset"] for s in hourly.schedules]
    assert sorted(watched) == sorted(find_datasets())
    assert nightly.schedules[0].schedule.cron == "0 2 * * *"
    assert nightly.entrypoint == "flows/nightly.py:nightly"


@pytest.fixture(scope="module")
def service():
    """A real HTTP server on a free loopback port that records what it is sent."""
    received: list[tuple[str, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(("POST", self.path))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


INCOMING_ROWS = 30


@pytest.fixture(scope="module")
def first_run(prefect_server, gx_root, module_registry, service, tmp_path_factory):
    """A first retrain of gps_tracker/binary: no champion yet, so it promotes.

    Real rows of the file, dropped into the incoming folder, join the base file.
    """
    from flows.retrain import retrain

    url, received = service
    incoming = tmp_path_factory.mktemp("incoming")
    (incoming / "gps_tracker").mkdir()
    source = dataset_path(get_spec("gps_tracker"), resolve_data_dir())
    with open(source, encoding="utf-8-sig") as handle:
        lines = handle.readlines()
    rows = lines[:1] + lines[-INCOMING_ROWS:]
    (incoming / "gps_tracker" / "labeled.csv").write_text("".join(rows))
    state = retrain(
        "gps_tracker",
        "binary",
        models=SKLEARN_CANDIDATES,
        context_root=gx_root,
        incoming_dir=str(incoming),
        service_url=url,
        return_state=True,
        **SLICE,
    )
    assert state.is_completed(), state.message
    return state, state.result()


@pytest.mark.slow
def test_retrain_reloads_the_service_after_a_promotion(first_run, service):
    url, received = service

    package = first_run[1]["package"]

    assert ("POST", "/reload") in received
    assert package["reload"] == f"reload of {url}/reload answered 200"
    assert package["bento"] == "not requested"


@pytest.mark.slow
def test_retrain_leaves_its_artifacts_in_the_prefect_api(first_run):
    state, outcome = first_run

    found = artifacts_of(state.state_details.flow_run_id)

    keys = {
        "validation-gps-tracker",
        "data-docs",
        "metrics-gps-tracker-binary",
        "confusion-gps-tracker-binary",
        "promotion-gps-tracker-binary",
        "package",
    }
    assert keys <= set(found)
    assert "passed" in found["validation-gps-tracker"].data
    metrics = json.loads(found["metrics-gps-tracker-binary"].data)
    assert [row["model"] for row in metrics] == SKLEARN_CANDIDATES
    assert {row["f1_macro_strict"] for row in metrics} == {"n/a"}  # strict=False
    assert all(0 < float(row["f1_macro"]) <= 1 for row in metrics)
    confusion = found["confusion-gps-tracker-binary"].data
    assert "| **normal** |" in confusion and "data:image/png;base64," in confusion
    # Prefect stores a link artifact as markdown: [text](link).
    assert "(file://" in found["data-docs"].data
    assert found["data-docs"].data.endswith("local_site/index.html)")
    decision = found["promotion-gps-tracker-binary"].data
    assert "PROMOTED" in decision and "no usable champion" in decision
    assert outcome["tasks"]["binary"]["promoted"]
    assert outcome["incoming_rows"] == INCOMING_ROWS


@pytest.mark.slow
def test_retrain_keeps_the_champion_against_a_weaker_challenger(
    first_run, gx_root, service
):
    from flows.retrain import retrain

    url, received = service
    champion_tag = first_run[1]["tasks"]["binary"]["champion"]
    reloads = len(received)

    outcome = retrain(
        "gps_tracker",
        "binary",
        models=["nb"],
        context_root=gx_root,
        service_url=url,
        **SLICE,
    )

    result = outcome["tasks"]["binary"]
    assert result["registered"] != champion_tag
    assert not result["promoted"]
    decision = result["decision"]
    assert decision["challenger"] < decision["champion"]
    assert "does not beat" in decision["reason"]
    assert registry.champion("gps_tracker", "binary")["tag"] == champion_tag
    assert outcome["promoted"] == []
    assert "package" not in outcome and len(received) == reloads


@pytest.mark.slow
def test_retrain_stops_on_a_corrupted_file_and_keeps_the_champion(
    first_run, gx_root, tmp_path
):
    from flows.retrain import retrain

    champion_tag = first_run[1]["tasks"]["binary"]["champion"]
    registered = len(registry.list_models("gps_tracker"))
    data_dir = data_copy(
        tmp_path, ["gps_tracker"], {"gps_tracker": ("latitude", "lat")}
    )

    state = retrain(
        "gps_tracker",
        "binary",
        models=SKLEARN_CANDIDATES,
        data_dir=data_dir,
        context_root=gx_root,
        return_state=True,
        **SLICE,
    )

    assert state.is_failed()
    assert "validation failed, champion kept" in state.message
    assert "expect_column_to_exist(latitude)" in state.message
    assert registry.champion("gps_tracker", "binary")["tag"] == champion_tag
    assert len(registry.list_models("gps_tracker")) == registered
    found = artifacts_of(state.state_details.flow_run_id)
    summary = found["validation-gps-tracker"].data
    assert "FAILED" in summary and "| expect_column_to_exist | latitude |" in summary
    assert "metrics-gps-tracker-binary" not in found


@pytest.mark.slow
def test_retrain_trains_and_registers_a_keras_candidate(
    prefect_server, gx_root, tmp_path, monkeypatch
):
    from flows.retrain import retrain
    from ids.detector import read_metadata

    monkeypatch.setenv(registry.REGISTRY_DIR_ENV, str(tmp_path / "registry"))

    outcome = retrain(
        "weather",
        "multiclass",
        models=["rnn_gru"],
        optimizers=["adam"],
        epochs=1,
        context_root=gx_root,
        **SLICE,
    )

    result = outcome["tasks"]["multiclass"]
    assert result["promoted"]
    meta = read_metadata(registry.champion_path("weather", "multiclass"))
    assert (meta["model"], meta["optimizer"], meta["keras"]) == (
        "rnn_gru",
        "adam",
        True,
    )
    assert 0 < registry.champion("weather", "multiclass")["metrics"]["f1_macro"] <= 1


@pytest.mark.slow
def test_nightly_fails_only_the_corrupted_dataset(
    prefect_server, gx_root, tmp_path, monkeypatch
):
    from flows.nightly import nightly

    monkeypatch.setenv(registry.REGISTRY_DIR_ENV, str(tmp_path / "registry"))
    data_dir = data_copy(
        tmp_path / "data",
        ["fridge", "thermostat"],
        {"thermostat": ("current_temperature", "current_temp")},
    )

    state = nightly(
        tasks=["binary"],
        models=["dt", "lr"],
        data_dir=data_dir,
        context_root=gx_root,
        return_state=True,
        **SLICE,
    )

    assert state.is_failed()
    assert state.message.startswith("1 of 2 dataset(s) failed (thermostat)")
    assert "expect_column_to_exist(current_temperature)" in state.message
    summary = state.result(raise_on_failure=False)
    assert summary["fridge"]["outcome"] == "ok"
    assert summary["thermostat"]["outcome"] == "failed"
    assert registry.champion("fridge", "binary") is not None
    assert registry.champion("thermostat", "binary") is None
    table = json.loads(
        artifacts_of(state.state_details.flow_run_id)["nightly-summary"].data
    )
    assert {row["dataset"]: row["outcome"] for row in table} == {
        "fridge": "ok",
        "thermostat": "failed",
    }


def _champions(datasets: list[str]) -> dict[str, tuple]:
    from ids.detector import read_metadata

    found = {}
    for name in datasets:
        entry = registry.champion(name, "binary")
        meta = read_metadata(entry["path"])
        found[name] = (meta["model"], round(entry["metrics"]["f1_macro"], 10))
    return found


@pytest.mark.slow
def test_nightly_on_a_dask_cluster_gives_the_default_runners_champions(
    prefect_server, gx_root, tmp_path, monkeypatch
):
    from distributed import LocalCluster

    from flows.nightly import nightly

    datasets = ["gps_tracker", "weather"]
    settings = dict(
        datasets=datasets,
        tasks=["binary"],
        models=SKLEARN_CANDIDATES,
        context_root=gx_root,
        **SLICE,
    )
    monkeypatch.setenv(registry.REGISTRY_DIR_ENV, str(tmp_path / "default"))
    default = nightly(**settings)
    assert all(entry["outcome"] == "ok" for entry in default.values())
    expected = _champions(datasets)

    # Workers inherit the environment, hence the registry, at start-up.
    monkeypatch.setenv(registry.REGISTRY_DIR_ENV, str(tmp_path / "dask"))
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        on_dask = nightly(**settings, dask_address=cluster.scheduler_address)

    assert all(entry["outcome"] == "ok" for entry in on_dask.values())
    assert _champions(datasets) == expected
    here = f":{os.getpid()}"
    assert not any(entry["worker"].endswith(here) for entry in on_dask.values())
    assert all(entry["worker"].endswith(here) for entry in default.values())


def test_notify_service_reports_an_unreachable_service(free_port):
    from flows.package import notify_service

    message = notify_service(f"http://127.0.0.1:{free_port}")

    assert message.startswith(f"reload of http://127.0.0.1:{free_port}/reload failed")


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [(None, "1", True), (None, "", False), (None, "no", False), (False, "1", False)],
)
def test_wants_bento_follows_the_flag_then_the_env(flag, env, expected, monkeypatch):
    from flows.package import BUILD_BENTO_ENV, wants_bento

    monkeypatch.setenv(BUILD_BENTO_ENV, env)

    assert wants_bento(flag) is expected


def test_build_bento_names_a_missing_bentofile(tmp_path):
    from flows.package import build_bento

    with pytest.raises(
        FileNotFoundError, match="bentofile .*bentofile.yaml' not found"
    ):
        build_bento(tmp_path / "bentofile.yaml")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runner": "ray"}, "unknown task runner 'ray'"),
        ({"runner": "thread", "dask_address": "tcp://x:1"}, "a Dask address"),
        ({"workers": -1}, "workers must be >= 0"),
    ],
)
def test_resolve_runner_rejects_bad_settings(kwargs, message, monkeypatch):
    from flows.runners import DASK_ADDRESS_ENV, RUNNER_ENV, resolve_runner

    monkeypatch.delenv(RUNNER_ENV, raising=False)
    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)

    with pytest.raises(ValueError, match=message):
        resolve_runner(**kwargs)


def test_resolve_runner_picks_dask_from_the_address_env(monkeypatch):
    from flows.runners import DASK_ADDRESS_ENV, RUNNER_ENV, resolve_runner

    monkeypatch.delenv(RUNNER_ENV, raising=False)
    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://127.0.0.1:8786")

    assert resolve_runner() == ("dask", "tcp://127.0.0.1:8786", 2)


@pytest.mark.slow
def test_build_bento_builds_the_service_bento(tmp_path, monkeypatch):
    from flows.package import build_bento

    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))

    tag = build_bento()

    name, version = tag.split(":")
    assert name == "ids"
    assert (tmp_path / "bentoml" / "bentos" / name / version / "bento.yaml").is_file()
