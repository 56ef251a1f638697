"""The real Prefect server fixture and infra/prefect_server.sh."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "infra" / "prefect_server.sh"

pytestmark = pytest.mark.slow


def test_prefect_server_answers_health_and_version(prefect_server):
    assert httpx.get(f"{prefect_server}/health", timeout=5).json() is True
    version = httpx.get(f"{prefect_server}/admin/version", timeout=5).json()
    assert version.startswith("3.")
    assert os.environ["PREFECT_API_URL"] == prefect_server


def test_prefect_server_records_flow_run_and_markdown_artifact(prefect_server):
    from prefect import flow
    from prefect.artifacts import create_markdown_artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
    )
    from prefect.runtime import flow_run

    flow_name = f"registry-smoke-{uuid.uuid4().hex[:8]}"
    key = f"smoke-{uuid.uuid4().hex[:8]}"
    markdown = "# Smoke\n\n| metric | value |\n|---|---|\n| f1 | 0.5 |"

    @flow(name=flow_name, persist_result=False)
    def smoke(x: int) -> str:
        create_markdown_artifact(markdown=markdown, key=key, description="smoke")
        return flow_run.id

    run_id = smoke(2)

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name]))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert [str(run.id) for run in runs] == [run_id]
    assert runs[0].state.is_completed()
    assert runs[0].parameters == {"x": 2}
    assert len(artifacts) == 1
    assert artifacts[0].type == "markdown"
    assert artifacts[0].data == markdown
    assert str(artifacts[0].flow_run_id) == run_id


def _script(action: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )


def test_prefect_server_script_starts_reports_and_stops(tmp_path, free_port):
    port = free_port
    env = {**os.environ, "IDS_HOME": str(tmp_path), "IDS_PREFECT_PORT": str(port)}
    env.pop("PREFECT_HOME")
    env.pop("PREFECT_API_URL", None)
    pid_file = tmp_path / "prefect" / "server.pid"

    assert _script("status", env).returncode == 3
    started = _script("start", env)
    try:
        assert started.returncode == 0, started.stderr
        assert f"http://127.0.0.1:{port}/api" in started.stdout
        assert pid_file.is_file()
        assert (tmp_path / "prefect" / "prefect.db").is_file()
        status = _script("status", env)
        assert status.returncode == 0 and "healthy" in status.stdout
        again = _script("start", env)
        assert "already running" in again.stdout
    finally:
        stopped = _script("stop", env)
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_file.exists()
    assert _script("status", env).returncode == 3
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)


def test_prefect_server_script_rejects_unknown_action():
    result = _script("restart", dict(os.environ))
    assert result.returncode == 2
    assert "usage:" in result.stderr
