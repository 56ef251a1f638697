"""Tests of ids.training: real slices end to end, train-only fitting, reports."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from imblearn.pipeline import Pipeline
from windows_data import write_windows_dataset

from ids.catalog import CLASSES, dataset_path, get_spec, resolve_data_dir
from ids.data import input_columns, load_dataset, read_raw
from ids.detector import Detector
from ids.training import TrainingConfig, protocol_frame, protocol_split, train_dataset

RESULT_KEYS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "f1_weighted",
    "f1_macro_strict",
    "majority_accuracy",
    "ceiling_accuracy",
    "train_seconds",
    "rows_train",
    "rows_test",
)
FRIDGE_ABSENT = {"dos", "mitm", "scanning"}
TELEMETRY_LEAKS = {"ts", "date", "time"}
NETWORK_LEAKS = {"ts", "src_ip", "dst_ip", "src_port", "dst_port", "dns_query"}
PLANTED_SERVICE = "only-in-test"
PLANTED_DURATION = 1e12


@pytest.fixture(scope="module")
def fridge_run(tmp_path_factory):
    config = TrainingConfig(models=("dt", "rf"), max_rows=3000, seed=0)
    return train_dataset(
        "fridge", "multiclass", config, out_dir=tmp_path_factory.mktemp("runs")
    )


def _plant_test_only_values(root: Path) -> list[int]:
    """Write a real network slice whose test-split rows carry values no training
    row has; returns the file rows (0-based, after the header) planted."""
    spec = get_spec("network")
    source = dataset_path(spec, resolve_data_dir())
    header, *body = source.read_text().splitlines(keepends=True)
    rows = [body[i] for i in sorted(random.Random(3).sample(range(len(body)), 3000))]
    target = dataset_path(spec, root)
    target.parent.mkdir(parents=True)
    target.write_text(header + "".join(rows))

    loaded = load_dataset("network", root)
    hashes = pd.Series(loaded.raw_hash)
    kept = np.flatnonzero(~hashes.duplicated().to_numpy())
    frame, _, _ = protocol_frame(loaded)
    test_rows = kept[protocol_split(frame, seed=0).test]
    # Only rows without a twin: changing one then moves no duplicate around.
    alone = ~hashes.duplicated(keep=False).to_numpy()
    planted = [int(r) for r in test_rows if alone[r]][:6]
    names = header.rstrip("\n").split(",")
    service, duration = names.index("service"), names.index("duration")
    for r in planted:
        fields = rows[r].rstrip("\n").split(",")
        # Distinct per row, so that two planted rows never become twins.
        fields[service] = f"{PLANTED_SERVICE}-{r}"
        fields[duration] = f"{PLANTED_DURATION + r:.0f}"
        rows[r] = ",".join(fields) + "\n"
    target.write_text(header + "".join(rows))
    return planted


@pytest.fixture(scope="module")
def network_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("network-data")
    planted = _plant_test_only_values(root)
    config = TrainingConfig(models=("dt",), seed=0, strict=False)
    result = train_dataset(
        "network",
        "multiclass",
        config,
        data_dir=root,
        out_dir=tmp_path_factory.mktemp("runs"),
    )
    return root, planted, result


def _detector(result, tag: str | None = None) -> Detector:
    return Detector.load(result.detectors[tag or result.best])


def test_train_dataset_rows_carry_every_result_key(fridge_run):
    assert [row["tag"] for row in fridge_run.rows] == [
        "fridge-multiclass-dt",
        "fridge-multiclass-rf",
    ]
    for row in fridge_run.rows:
        missing = [key for key in RESULT_KEYS if key not in row]
        assert not missing, row["tag"]
        for key in ("accuracy", "f1_macro", "majority_accuracy", "ceiling_accuracy"):
            assert 0.0 <= row[key] <= 1.0, key
        assert row["f1_macro_strict"] is not None
        assert row["rows_train"] == fridge_run.split_counts["train"]
        assert row["rows_test"] == fridge_run.split_counts["test"]
        assert row["train_seconds"] >= 0
        # No per-row model can beat the per-input majority vote.
        assert row["accuracy"] <= row["ceiling_accuracy"] + 1e-9


def test_train_dataset_writes_results_and_confusion_pngs(fridge_run):
    folder = fridge_run.folder

    table = json.loads((folder / "results.json").read_text())
    markdown = (folder / "results.md").read_text()

    assert [row["tag"] for row in table] == [r["tag"] for r in fridge_run.rows]
    assert all(set(RESULT_KEYS) <= set(row) for row in table)
    assert table[0]["paper_accuracy"] == 0.78
    assert "f1_macro_strict" in markdown and "| fridge | multiclass | rf |" in markdown
    for row in fridge_run.rows:
        png = folder / row["confusion_png"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    for tag, saved in fridge_run.detectors.items():
        assert saved.parent == folder / "detectors" and saved.name == tag


def test_train_dataset_per_class_covers_vocabulary_marking_absent(fridge_run):
    for row in fridge_run.rows:
        per_class = row["per_class"]

        assert set(per_class) == set(CLASSES)
        absent = {c for c, scores in per_class.items() if not scores["present"]}
        assert absent == FRIDGE_ABSENT
        for cls in FRIDGE_ABSENT:
            assert per_class[cls]["support"] == 0
            assert per_class[cls]["f1"] is None
        support = sum(scores["support"] for scores in per_class.values())
        assert support == row["rows_test"]


def test_train_dataset_keeps_targets_and_leakage_out_of_inputs(fridge_run, network_run):
    _, _, network = network_run
    for result, leaks in ((fridge_run, TELEMETRY_LEAKS), (network, NETWORK_LEAKS)):
        detector = _detector(result)

        for columns in (detector.input_columns, detector.features):
            assert not {"label", "type"} & set(columns), result.dataset
            assert not leaks & set(columns), result.dataset
        assert detector.input_columns == input_columns(get_spec(result.dataset))
        assert not {"label", "type"} & set(detector.reference.columns)


def test_train_dataset_fits_preprocessing_on_training_rows_only(network_run):
    root, planted, result = network_run
    loaded = load_dataset("network", root)
    frame, _, _ = protocol_frame(loaded)
    split = protocol_split(frame, seed=0)
    kept = np.flatnonzero(~pd.Series(loaded.raw_hash).duplicated().to_numpy())
    assert len(planted) >= 3
    assert set(planted) <= set(kept[split.test])
    X = frame[input_columns(get_spec("network"))]
    train = X.iloc[split.train]
    planted_values = {f"{PLANTED_SERVICE}-{r}" for r in planted}
    assert not planted_values & set(train["service"])
    assert planted_values <= set(X.iloc[split.test]["service"])

    preprocessor = _detector(result).preprocessor

    vocabulary = preprocessor.named_steps["encode"].vocabulary_
    assert not planted_values & set(vocabulary["service"])
    assert set(vocabulary["service"]) == set(train["service"])
    scaler = preprocessor.named_steps["scale"]
    before = [s for s in preprocessor.steps[:-1] if not hasattr(s[1], "fit_resample")]
    encoded = Pipeline(before).transform(train)
    np.testing.assert_allclose(scaler.data_min_, encoded.min(axis=0))
    np.testing.assert_allclose(scaler.data_max_, encoded.max(axis=0))
    duration = scaler.columns_.index("duration")
    assert scaler.data_max_[duration] < np.log1p(PLANTED_DURATION) - 1


def test_train_dataset_test_split_holds_no_synthetic_row(network_run):
    root, _, result = network_run
    row = result.rows[0]
    frame, _, _ = protocol_frame(load_dataset("network", root))
    split = protocol_split(frame, seed=0)
    truth = frame["type"].to_numpy()[split.test]

    assert "balance" in _detector(result).preprocessor.named_steps
    assert row["rows_train_resampled"] > row["rows_train"] == len(split.train)
    assert row["rows_test"] == result.split_counts["test"] == len(split.test)
    expected = pd.Series(truth).value_counts().to_dict()
    support = {c: s["support"] for c, s in row["per_class"].items() if s["support"]}
    assert support == expected


def test_train_dataset_windows10_end_to_end(tmp_path):
    write_windows_dataset(tmp_path / "data", "windows10", n_rows=1000, seed=0)
    config = TrainingConfig(models=("dt",), seed=0, strict=False)

    with pytest.warns(UserWarning, match=r"\['mitm'\] have a single training row"):
        result = train_dataset(
            "windows10",
            "multiclass",
            config,
            data_dir=tmp_path / "data",
            out_dir=tmp_path / "runs",
        )

    row = result.rows[0]
    detector = _detector(result)
    assert len(detector.features) == 20
    assert set(detector.features) <= set(get_spec("windows10").columns)
    assert "balance" in detector.preprocessor.named_steps
    assert row["rows_train_resampled"] > row["rows_train"]
    assert row["f1_macro"] > 0.5
    raw, _ = read_raw(
        dataset_path(get_spec("windows10"), tmp_path / "data"), get_spec("windows10")
    )
    proba = detector.predict_proba(raw.head(50).to_dict("records"))
    assert proba.shape == (50, len(CLASSES))


@pytest.mark.slow
def test_train_dataset_rnn_gru_reloads_with_identical_proba(tmp_path):
    config = TrainingConfig(
        models=("rnn_gru",), optimizers=("adam",), epochs=1, max_rows=2000, strict=False
    )

    result = train_dataset("fridge", "multiclass", config, out_dir=tmp_path)

    row = result.rows[0]
    assert row["tag"] == "fridge-multiclass-rnn_gru-adam"
    assert row["epochs_run"] == 1
    assert row["batch_size"] == config.batch_size
    saved = result.detectors[row["tag"]]
    assert (saved / "model.keras").is_file()
    raw, _ = read_raw(
        dataset_path(get_spec("fridge"), resolve_data_dir()), get_spec("fridge")
    )
    records = raw.sample(64, random_state=0).to_dict("records")
    trained = Detector.load(saved)
    again = Detector.load(saved)
    proba = trained.predict_proba(records)
    np.testing.assert_array_equal(proba, again.predict_proba(records))
    assert proba.shape == (64, len(CLASSES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_train_dataset_never_writes_over_an_earlier_run(fridge_run):
    saved = fridge_run.detectors["fridge-multiclass-dt"]
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    config = TrainingConfig(models=("dt",), max_rows=1000, strict=False)

    again = train_dataset(
        "fridge", "multiclass", config, out_dir=fridge_run.folder.parent
    )

    assert again.folder != fridge_run.folder
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before


@pytest.mark.parametrize(
    "task, config, message",
    [
        ("triage", TrainingConfig(models=("dt",)), r"unknown task 'triage'"),
        ("binary", TrainingConfig(models=("xgboost",)), r"unknown model\(s\) \['xgb"),
        (
            "binary",
            TrainingConfig(models=("rnn_gru",), optimizers=("sgd",)),
            r"unknown optimizer\(s\) \['sgd'\]",
        ),
    ],
)
def test_train_dataset_rejects_bad_arguments(tmp_path, task, config, message):
    with pytest.raises(ValueError, match=message):
        train_dataset("fridge", task, config, out_dir=tmp_path)

    assert not any(tmp_path.iterdir())
