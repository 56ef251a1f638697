"""Tests of ids.detector: the saved form reloads and scores raw file records alike."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ids.catalog import (
    BINARY_CLASSES,
    CLASSES,
    dataset_path,
    get_spec,
    resolve_data_dir,
)
from ids.data import RecordError, input_columns, load_dataset, read_raw
from ids.detector import METADATA, Detector, reference_sample
from ids.features import build_preprocessor, fit_preprocessor, transform_records
from ids.models import build_model, fit_model
from ids.splits import deduplicate, stratified_split

FRIDGE_ABSENT = ("dos", "mitm", "scanning")


def _fit_detector(name: str, task: str, records: pd.DataFrame) -> Detector:
    spec = get_spec(name)
    classes = spec.classes(task)
    X = records[input_columns(spec)]
    if task == "binary":
        y = np.where(records["label"] == 1, "attack", "normal").astype(object)
    else:
        y = records["type"].to_numpy().astype(object)
    split = stratified_split(records["type"].to_numpy(), seed=0)
    fitted, X_train, y_train = fit_preprocessor(
        build_preprocessor(spec, seed=0), X.iloc[split.train], y[split.train]
    )
    codes = np.array([classes.index(v) for v in y_train])
    model = build_model("dt", n_classes=len(classes), seed=0)
    fit_model(model, X_train, codes)
    return Detector(
        name,
        task,
        classes,
        list(X.columns),
        fitted,
        model,
        "dt",
        metrics={"f1_macro": 0.5},
        fingerprint={"md5": "test"},
        config={"seed": 0},
        reference=reference_sample(X.iloc[split.train]),
    )


@pytest.fixture(scope="module")
def fridge_raw() -> pd.DataFrame:
    raw, _ = read_raw(
        dataset_path(get_spec("fridge"), resolve_data_dir()), get_spec("fridge")
    )
    return raw


@pytest.fixture(scope="module")
def fridge_detector(tmp_path_factory, fridge_raw):
    loaded = load_dataset("fridge", max_rows=6000)
    detector = _fit_detector("fridge", "multiclass", loaded.records)
    folder = detector.save(tmp_path_factory.mktemp("fridge") / "detector")
    return detector, folder


@pytest.fixture(scope="module")
def network_raw(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("network")
    source = dataset_path(get_spec("network"), resolve_data_dir())
    header, *body = source.read_text().splitlines(keepends=True)
    sample = sorted(random.Random(2).sample(range(len(body)), 3000))
    target = dataset_path(get_spec("network"), root)
    target.parent.mkdir(parents=True)
    target.write_text(header + "".join(body[i] for i in sample))
    raw, _ = read_raw(target, get_spec("network"))
    return root, raw


@pytest.fixture(scope="module")
def network_detector(tmp_path_factory, network_raw):
    root, _ = network_raw
    loaded = load_dataset("network", root)
    records = deduplicate(loaded.records, loaded.raw_hash)
    detector = _fit_detector("network", "binary", records)
    folder = detector.save(tmp_path_factory.mktemp("network") / "detector")
    return detector, folder


def _padded_fridge_records(raw: pd.DataFrame, n: int = 40) -> list[dict]:
    padded = raw["temp_condition"].str.endswith(" ") & raw["time"].str.startswith(" ")
    rows = raw.loc[padded].sample(n, random_state=0)
    assert rows["temp_condition"].isin(["low  ", "high  ", "low ", "high "]).all()
    return rows.to_dict("records")


def test_detector_reload_gives_identical_proba_on_padded_raw_records(
    fridge_detector, fridge_raw
):
    detector, folder = fridge_detector
    records = _padded_fridge_records(fridge_raw)

    reloaded = Detector.load(folder)

    np.testing.assert_array_equal(
        reloaded.predict_proba(records), detector.predict_proba(records)
    )
    assert reloaded.classes == CLASSES
    assert reloaded.input_columns == detector.input_columns
    assert reloaded.features == detector.features
    assert reloaded.metrics == {"f1_macro": 0.5}
    assert reloaded.config == {"seed": 0}
    pd.testing.assert_frame_equal(reloaded.reference, detector.reference)


def test_detector_reload_gives_identical_proba_on_dash_raw_records(
    network_detector, network_raw
):
    detector, folder = network_detector
    _, raw = network_raw
    records = raw.sample(200, random_state=1).to_dict("records")
    assert any(r["service"] == "-" for r in records)
    assert any(r["http_trans_depth"] == "-" for r in records)

    reloaded = Detector.load(folder)

    np.testing.assert_array_equal(
        reloaded.predict_proba(records), detector.predict_proba(records)
    )
    np.testing.assert_array_equal(reloaded.predict(records), detector.predict(records))


def test_detector_ignores_padding_of_raw_strings(fridge_detector, fridge_raw):
    detector, _ = fridge_detector
    records = _padded_fridge_records(fridge_raw)
    stripped = [{k: v.strip() for k, v in r.items()} for r in records]

    np.testing.assert_array_equal(
        detector.predict_proba(records), detector.predict_proba(stripped)
    )


def test_detector_multiclass_proba_covers_fixed_vocabulary(fridge_detector, fridge_raw):
    detector, _ = fridge_detector
    records = fridge_raw.sample(300, random_state=3)

    proba = detector.predict_proba(records)

    assert proba.shape == (300, len(CLASSES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    for absent in FRIDGE_ABSENT:
        assert absent not in set(fridge_raw["type"])
        assert (proba[:, CLASSES.index(absent)] == 0).all(), absent
    assert set(detector.predict(records)) <= set(fridge_raw["type"])


def test_detector_binary_proba_has_two_columns(network_detector, network_raw):
    detector, _ = network_detector
    _, raw = network_raw
    records = raw.sample(100, random_state=4).to_dict("records")

    proba = detector.predict_proba(records)

    assert detector.classes == BINARY_CLASSES
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    truth = np.where(np.array([r["label"] for r in records]) == "1", "attack", "normal")
    assert (detector.predict(records) == truth).mean() > 0.9


def test_detector_takes_fields_by_name(network_detector, network_raw):
    detector, _ = network_detector
    _, raw = network_raw
    records = raw.sample(60, random_state=5).to_dict("records")
    rng = random.Random(0)
    shuffled = []
    for record in records:
        keys = list(record)
        rng.shuffle(keys)
        shuffled.append({k: record[k] for k in keys})
    assert list(shuffled[0]) != list(records[0])

    expected = detector.predict_proba(records)

    np.testing.assert_array_equal(detector.predict_proba(shuffled), expected)
    reversed_frame = pd.DataFrame(records)[list(records[0])[::-1]]
    np.testing.assert_array_equal(detector.predict_proba(reversed_frame), expected)


def test_detector_metadata_lists_inputs_without_targets(network_detector):
    _, folder = network_detector

    meta = json.loads((folder / METADATA).read_text())

    assert meta["classes"] == ["normal", "attack"]
    assert meta["dataset"] == "network" and meta["task"] == "binary"
    for column in ("label", "type", "ts", "src_ip", "dst_ip", "src_port", "dst_port"):
        assert column not in meta["input_columns"]
        assert column not in meta["features"]


def test_detector_save_never_writes_over_an_existing_folder(fridge_detector, tmp_path):
    detector, _ = fridge_detector
    existing = tmp_path / "champion"
    existing.mkdir()
    (existing / "model.joblib").write_bytes(b"trained before")

    with pytest.raises(FileExistsError, match=r"champion already exists; a trained"):
        detector.save(existing)

    assert (existing / "model.joblib").read_bytes() == b"trained before"
    assert sorted(p.name for p in existing.iterdir()) == ["model.joblib"]


def test_detector_save_refuses_an_already_saved_detector(fridge_detector):
    detector, folder = fridge_detector
    before = (folder / METADATA).read_text()

    with pytest.raises(FileExistsError, match="never written over"):
        detector.save(folder)

    assert (folder / METADATA).read_text() == before


def test_detector_load_rejects_folder_without_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not a detector folder: detector"):
        Detector.load(tmp_path)


@pytest.mark.parametrize(
    "records, error, message",
    [
        ([], RecordError, r"fridge: no records to score"),
        ("ts,date,time", TypeError, r"records must be a DataFrame or a list of dicts"),
        (
            [{"fridge_temperature": "9", "time": " 19:19:40 "}],
            RecordError,
            r"record field\(s\) \['temp_condition'\] missing",
        ),
        (
            [{"fridge_temperature": "warm", "temp_condition": "low  "}],
            RecordError,
            r"column 'fridge_temperature' expects a number; row\(s\) \[0\] hold "
            r"\['warm'\]",
        ),
    ],
    ids=["empty", "not-records", "missing-field", "bad-number"],
)
def test_detector_rejects_bad_records(fridge_detector, records, error, message):
    detector, _ = fridge_detector

    with pytest.raises(error, match=message):
        detector.predict_proba(records)


@pytest.mark.parametrize("name", ["rf", "dt"])
def test_model_proba_equals_predict_proba_of_tree_models(network_raw, name):
    from ids.models import model_proba

    root, _ = network_raw
    loaded = load_dataset("network", root)
    records = deduplicate(loaded.records, loaded.raw_hash)
    spec = get_spec("network")
    y = records["type"].to_numpy().astype(object)
    split = stratified_split(records["type"].to_numpy(), seed=0)
    fitted, X_train, y_train = fit_preprocessor(
        build_preprocessor(spec, seed=0),
        records[input_columns(spec)].iloc[split.train],
        y[split.train],
    )
    codes = np.array([spec.classes("multiclass").index(v) for v in y_train])
    model = fit_model(build_model(name, n_classes=10, seed=0), X_train, codes)
    X_test = transform_records(fitted, records[input_columns(spec)].iloc[split.test])
    # One job: scikit-learn's own sum over trees then runs in a fixed order
    # (with threads it differs from run to run in the last bit).
    model.set_params(**{"n_jobs": 1} if "n_jobs" in model.get_params() else {})

    for rows in (X_test[:1], X_test):
        expected = model.predict_proba(rows)
        np.testing.assert_array_equal(model_proba(model, rows), expected)
    # Anything but a checked float32 matrix goes to scikit-learn as it is.
    as_float64 = X_test.astype(np.float64)
    np.testing.assert_array_equal(
        model_proba(model, as_float64), model.predict_proba(as_float64)
    )
