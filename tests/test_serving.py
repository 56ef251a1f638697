"""Tests of serving: one real `bentoml serve` with champions trained on real slices."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sys
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, bentoml_serve

from ids import registry
from ids.catalog import get_spec, resolve_data_dir
from ids.detector import read_metadata

pytestmark = pytest.mark.slow

# garage_door: the telemetry file with input vectors that are (almost) only
# attacks; fridge, thermostat and others cannot be separated row by row.
DATASETS = ("network", "garage_door")


@functools.cache
def _raw(dataset: str) -> pd.DataFrame:
    """The whole raw file (read once; callers take copies)."""
    spec = get_spec(dataset)
    frame = pd.read_csv(
        resolve_data_dir() / spec.relpath,
        dtype=str,
        keep_default_na=False,
        encoding="utf-8-sig",
    )
    frame.columns = [c.strip("\r") for c in frame.columns]
    return frame


@pytest.fixture(scope="session")
def champions(tmp_path_factory) -> dict:
    """Tiny dt champions of network and garage_door, registered and promoted."""
    from ids.training import TrainingConfig, train_dataset

    runs = tmp_path_factory.mktemp("serving-runs")
    folders = {}
    for dataset in DATASETS:
        for task in ("binary", "multiclass"):
            config = TrainingConfig(models=("dt",), max_rows=3000, strict=False)
            run = train_dataset(dataset, task, config, out_dir=runs)
            (folder,) = run.detectors.values()
            tag = registry.register_detector(folder)
            registry.promote_champion(dataset, task, tag, "test champion", {})
            folders[(dataset, task)] = folder
    return folders


@pytest.fixture(scope="session")
def server(champions, tmp_path_factory) -> str:
    """URL of one real `bentoml serve` of the service for the whole session."""
    log_path = tmp_path_factory.mktemp("serving-server") / "serve.log"
    # Two workers: the log and the reload are checked across processes.
    with bentoml_serve(
        log_path,
        IDS_RELOAD_INTERVAL_S="0.5",
        IDS_MAX_RECORDS="2000",
        IDS_SERVE_WORKERS="2",
    ) as url:
        yield url


def _post(url: str, body, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/score", json=body, timeout=60.0, **kwargs)


def _mostly_attack_rows(dataset: str, rows: int = 40) -> list[dict]:
    """Raw rows whose input vector is an attack in at least 95% of the file."""
    raw = _raw(dataset)
    features = get_spec(dataset).feature_columns
    # Keyed as the model sees a row: padding and case of the text are no signal.
    view = raw[features].apply(lambda column: column.str.strip().str.lower())
    key = pd.util.hash_pandas_object(view, index=False)
    attack = raw["label"].str.strip() == "1"
    share = attack.groupby(key).transform("mean")
    count = attack.groupby(key).transform("size")
    picked = raw[(share >= 0.95) & (count >= 5) & attack]
    assert len(picked) >= rows, f"{dataset}: only {len(picked)} mostly-attack rows"
    return (
        picked.sample(rows, random_state=0)
        .drop(columns=["label", "type"])
        .to_dict("records")
    )


@pytest.mark.parametrize("dataset", DATASETS)
def test_service_flags_known_attack_rows(server, dataset):
    records = _mostly_attack_rows(dataset)

    response = _post(server, {"dataset": dataset, "records": records})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(records)
    assert body["models"]["binary"].startswith(f"ids-{dataset}-binary:")
    flagged = np.mean([p["is_attack"] for p in body["predictions"]])
    assert flagged >= 0.8, f"{dataset}: only {flagged:.0%} of attack rows flagged"
    first = body["predictions"][0]
    assert set(first) == {
        "is_attack",
        "attack_probability",
        "attack_type",
        "probabilities",
        "disagree",
    }
    assert abs(sum(first["probabilities"].values()) - 1.0) < 1e-6
    assert first["disagree"] == (
        first["is_attack"] != (first["attack_type"] != "normal")
    )


def _network_record() -> dict:
    raw = _raw("network").head(1).drop(columns=["label", "type"])
    return raw.to_dict("records")[0]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (lambda r: {"dataset": "nope", "records": [r]}, 400, "unknown dataset 'nope'"),
        (lambda r: {"dataset": "network", "records": []}, 400, "'records' is empty"),
        (
            lambda r: {"dataset": "thermostat", "records": [r]},
            404,
            "no champion for dataset 'thermostat'",
        ),
        (
            lambda r: {
                "dataset": "network",
                "records": [{k: v for k, v in r.items() if k != "proto"}],
            },
            400,
            r"field 'proto': record\(s\) \[0\] lack it",
        ),
        (
            lambda r: {"dataset": "network", "records": [{**r, "duration": "fast"}]},
            400,
            r"field 'duration' expects a number .*'fast'",
        ),
        (
            lambda r: {"dataset": "network", "records": [r, {**r, "src_bytes": None}]},
            400,
            r"field 'src_bytes': record\(s\) \[1\] have null",
        ),
        (
            lambda r: {"dataset": "network", "records": [{**r, "dst_bytes": [1]}]},
            400,
            r"field 'dst_bytes' expects a number",
        ),
        (
            lambda r: {"dataset": "network", "records": [r] * 2001},
            413,
            "2001 records, over the limit of 2000",
        ),
        (lambda r: {"records": [r]}, 400, "dataset"),
    ],
    ids=[
        "unknown-dataset",
        "empty-list",
        "no-champion",
        "missing-field",
        "wrong-type-string",
        "null-value",
        "wrong-type-list",
        "too-many-records",
        "no-dataset-field",
    ],
)
def test_service_rejects_bad_input(server, change, status, message):
    response = _post(server, change(_network_record()))

    assert response.status_code == status, response.text
    assert re.search(message, response.text), response.text
    assert _post(
        server, {"dataset": "network", "records": [_network_record()]}
    ).is_success


@pytest.mark.parametrize(
    ("value", "field"),
    [("NaN", "duration"), ("Infinity", "src_pkts"), ("-Infinity", "dst_pkts")],
)
def test_service_rejects_nan_and_inf(server, value, field):
    body = json.dumps({"dataset": "network", "records": [_network_record()]})
    body = body.replace(f'"{field}": "', f'"{field}": {value}, "x_{field}": "', 1)

    response = httpx.post(
        f"{server}/score",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30.0,
    )

    assert response.status_code == 400, response.text
    assert f"field '{field}' expects a finite number, not NaN or inf" in response.text


def test_service_scores_unseen_category_through_unknown_code(server):
    record = {**_network_record(), "proto": "quic-never-seen", "service": "gopher"}

    response = _post(server, {"dataset": "network", "records": [record]})

    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["attack_type"] is not None


def test_service_takes_fields_by_name_not_key_order(server):
    raw = _raw("network").sample(50, random_state=4).drop(columns=["label", "type"])
    records = raw.to_dict("records")
    # Keys reversed, numbers sent as JSON numbers where they are numbers.
    shuffled = [dict(reversed(list(r.items()))) for r in records]
    for record in shuffled:
        for field in ("duration", "src_bytes", "dst_pkts"):
            if record[field].strip() not in ("", "-"):
                record[field] = float(record[field])

    ordered = _post(server, {"dataset": "network", "records": records})
    reordered = _post(server, {"dataset": "network", "records": shuffled})

    assert ordered.status_code == reordered.status_code == 200, reordered.text
    assert ordered.json()["predictions"] == reordered.json()["predictions"]


def test_service_reports_health_champions_and_openapi(server, champions):
    assert httpx.get(f"{server}/healthz").status_code == 200
    assert httpx.get(f"{server}/readyz").status_code == 200
    status = httpx.get(f"{server}/ids/champions").json()
    assert set(status["champions"]) == set(DATASETS)
    spec = httpx.get(f"{server}/docs.json").json()
    assert {"/score", "/reload", "/status"} <= set(spec["paths"])


def test_service_logs_every_record_scored_under_concurrency(server):
    from ids.inference_log import count_logged

    records = _raw("network").sample(600, random_state=1)
    records = records.drop(columns=["label", "type"]).to_dict("records")
    before = count_logged("network")
    sizes = [1, 7, 50, 120] * 5
    statuses, scored = [], []

    def client(size: int) -> None:
        response = _post(server, {"dataset": "network", "records": records[:size]})
        statuses.append(response.status_code)
        scored.append(response.json()["count"])

    threads = [threading.Thread(target=client, args=(s,)) for s in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * len(sizes)
    assert count_logged("network") - before == sum(scored) == sum(sizes)


def test_service_serves_promoted_champion_without_failed_request(server, champions):
    folder = champions[("network", "binary")]
    record = _network_record()
    statuses, tags = [], []
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=30.0) as client:
            while not stop.is_set():
                body = {"dataset": "network", "records": [record] * 5}
                response = client.post(f"{server}/score", json=body)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    tags.append(response.json()["models"]["binary"])

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        time.sleep(1.0)
        new_tag = registry.register_detector(folder)
        meta = read_metadata(folder)
        registry.promote_champion(meta["dataset"], meta["task"], new_tag, "retrain", {})
        deadline = time.monotonic() + 30
        # Each worker swaps on its own; wait until the last responses agree.
        while time.monotonic() < deadline and set(tags[-10:]) != {new_tag}:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join()

    assert statuses and set(statuses) == {200}
    assert tags[-1] == new_tag
    assert tags[0] != new_tag


def test_scorer_columns_match_detector_on_file_rows(champions):
    from ids.serving import Scorer, typed_columns

    scorer = Scorer(log=False)
    for dataset in DATASETS:
        raw = _raw(dataset).sample(500, random_state=2).drop(columns=["label", "type"])
        records = raw.to_dict("records")
        typed = typed_columns(records, get_spec(dataset))
        for task in ("binary", "multiclass"):
            champion = scorer.champions.champions[(dataset, task)]
            expected = champion.detector.predict_proba(raw)
            np.testing.assert_allclose(champion.proba(typed), expected)


def test_score_csv_writes_predictions_beside_file(champions, tmp_path):
    from ids.scoring_cli import main, predictions_path, score_csv

    path = tmp_path / "garage_slice.csv"
    _raw("garage_door").sample(300, random_state=3).to_csv(path, index=False)

    out = score_csv("garage_door", path)

    assert out == predictions_path(path) == tmp_path / "garage_slice.predictions.csv"
    frame = pd.read_csv(out)
    assert len(frame) == 300
    assert {"is_attack", "attack_type", "p_normal", "binary_model"} <= set(
        frame.columns
    )
    assert main(["nope", str(path)]) == 2


def test_request_guard_needs_token_and_bounds_size(monkeypatch):
    monkeypatch.setenv("IDS_API_TOKEN", "s3cret")
    monkeypatch.setenv("IDS_MAX_REQUEST_BYTES", "1000")
    sys.path.insert(0, str(REPO_ROOT))
    from bentos.service import RequestGuard

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = httpx.ASGITransport(app=RequestGuard(app))

    async def calls():
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return (
                await c.post("/score", json={}),
                await c.post("/score", json={}, headers={"Authorization": "Bearer no"}),
                await c.post(
                    "/score", json={}, headers={"Authorization": "Bearer s3cret"}
                ),
                await c.get("/readyz"),
                await c.post(
                    "/score",
                    content=b"x" * 2000,
                    headers={"Authorization": "Bearer s3cret"},
                ),
            )

    missing, wrong, right, probe, large = asyncio.run(calls())
    assert missing.status_code == wrong.status_code == 401
    assert "Authorization: Bearer <token>" in missing.json()["error"]
    assert right.status_code == probe.status_code == 200
    assert large.status_code == 413
    assert "2000 bytes is over the limit of 1000" in large.json()["error"]


def test_scorer_runs_shared_steps_once_with_the_same_result(champions):
    from ids.serving import Scorer

    scorer = Scorer(log=False)
    for dataset in DATASETS:
        raw = _raw(dataset).sample(300, random_state=5).drop(columns=["label", "type"])
        binary = scorer.champions.champions[(dataset, "binary")]
        multiclass = scorer.champions.champions[(dataset, "multiclass")]

        predictions = scorer.score(dataset, raw.to_dict("records"))["predictions"]

        # Both champions were fitted on the same rows: all steps before the
        # scaler agree, and a request runs them once.
        assert scorer.champions.shared_steps[dataset] == len(binary.steps) - 1
        expected = multiclass.detector.predict_proba(raw)
        got = [[p["probabilities"][c] for c in multiclass.classes] for p in predictions]
        np.testing.assert_array_equal(np.array(got), expected)
        attack = binary.detector.predict_proba(raw)[:, binary.classes.index("attack")]
        got = [p["attack_probability"] for p in predictions]
        np.testing.assert_array_equal(np.array(got), attack)
