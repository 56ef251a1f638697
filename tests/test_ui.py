"""The Prefect UI renders a drift table artifact, checked in a headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from ids.catalog import CATEGORICAL, dataset_path, get_spec, resolve_data_dir
from ids.data import input_columns, normalize_records, normalize_targets
from ids.drift_artifacts import TABLE_COLUMNS, column_rows

pytestmark = pytest.mark.slow

BROWSER_TIMEOUT_S = 120


def _chromium() -> str:
    """Path of Debian's chromium; missing fails in CI and skips elsewhere."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    message = (
        "chromium not found; install it (`apt-get install -y chromium`, as .ci/run "
        "does) for the Prefect UI check"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _network_slice(share: float, seed: int) -> pd.DataFrame:
    spec = get_spec("network")
    path = dataset_path(spec, resolve_data_dir())
    keep = np.random.default_rng(seed).random(300_000) < share
    raw = pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        encoding="utf-8-sig",
        skiprows=lambda line: line > 0 and not keep[line],
    )
    return pd.concat([normalize_records(raw, spec), normalize_targets(raw, "")], axis=1)


@pytest.fixture(scope="module")
def ui_server(prefect_server):
    """The session Prefect server, whose UI knows its API address; the API URL."""
    yield prefect_server
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=30, at_exit=False)


@pytest.fixture(scope="module")
def drift_table(ui_server):
    """A drift table artifact of a real shifted network window; returns its id."""
    from prefect import flow, get_client
    from prefect.artifacts import create_table_artifact
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from ids.monitoring import compute_drift

    spec = get_spec("network")
    columns = input_columns(spec)
    kinds = {
        c: CATEGORICAL if spec.columns.get(c) == CATEGORICAL else "numerical"
        for c in columns
    }
    records = _network_slice(0.03, seed=3)
    reference = records.sample(2_000, random_state=0)
    rest = records.drop(reference.index)
    window = rest[rest["type"].isin(["xss", "injection", "password"])]
    result = compute_drift(reference[columns], window[columns], kinds)
    rows = column_rows(result)

    @flow(name="ui-check")
    def publish() -> str:
        return str(
            create_table_artifact(
                table=rows, key="drift-columns-ui-check", description="UI check"
            )
        )

    artifact_id = publish()
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["drift-columns-ui-check"])
            )
        )
    assert str(artifact.id) == artifact_id
    return artifact_id, rows


def test_prefect_ui_artifact_page_renders_the_drift_table(
    ui_server, drift_table, tmp_path
):
    browser = _chromium()
    artifact_id, rows = drift_table
    base = ui_server.removesuffix("/api")
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        f"{base}/artifacts/artifact/{artifact_id}",
    ]

    done = subprocess.run(
        command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S
    )

    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert '<table class="p-table__table">' in dom, dom[-2000:]
    table = dom[dom.index("<table") : dom.index("</table>")]
    headers = re.findall(r'<th class="p-table-header[^"]*" title="([^"]+)"', table)
    assert tuple(headers) == TABLE_COLUMNS
    cells = re.findall(r'paragraph">([^<]*)</div>', table)
    # The UI pages the table; its first rows are on the first page.
    for row in rows[:3]:
        expected = [row[c] for c in TABLE_COLUMNS]
        assert any(
            cells[i : i + len(expected)] == expected for i in range(len(cells))
        ), f"row {expected} not rendered; cells: {cells[:30]}"
    assert any(row["drifted"] == "yes" for row in rows), "the shift should drift"
