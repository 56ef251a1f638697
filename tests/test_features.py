"""Tests of ids.features: encoders, cleaning, ReliefF and SMOTE on real slices."""

from __future__ import annotations

import logging
import random
import warnings

import numpy as np
import pandas as pd
import pytest
from imblearn.pipeline import Pipeline
from windows_data import SIGNAL_COLUMNS, write_windows_dataset

from ids.catalog import CATEGORICAL, dataset_path, get_spec, resolve_data_dir
from ids.data import (
    absent_column,
    input_columns,
    load_dataset,
    normalize_records,
    read_raw,
)
from ids.features import (
    UNKNOWN_CODE,
    CategoryEncoder,
    ColumnMinMaxScaler,
    RecordCleaner,
    ReliefFSelector,
    SafeSMOTE,
    build_preprocessor,
    fit_preprocessor,
    frame_columns,
    selected_features,
    transform_columns,
    transform_records,
)
from ids.splits import deduplicate, stratified_split

NETWORK = get_spec("network")
CATEGORICAL_NETWORK = tuple(
    c for c in input_columns(NETWORK) if NETWORK.columns.get(c) == CATEGORICAL
)


@pytest.fixture(scope="module")
def network_frame(tmp_path_factory) -> pd.DataFrame:
    """Deduplicated typed records of 3,000 seeded random real network rows."""
    root = tmp_path_factory.mktemp("network")
    source = dataset_path(NETWORK, resolve_data_dir())
    header, *body = source.read_text().splitlines(keepends=True)
    sample = sorted(random.Random(1).sample(range(len(body)), 3000))
    target = dataset_path(NETWORK, root)
    target.parent.mkdir(parents=True)
    target.write_text(header + "".join(body[i] for i in sample))
    loaded = load_dataset("network", root)
    return deduplicate(loaded.records, loaded.raw_hash)


def _encoded(frame: pd.DataFrame) -> tuple[pd.DataFrame, CategoryEncoder]:
    X = frame[input_columns(NETWORK)]
    cleaned = RecordCleaner(CATEGORICAL_NETWORK).fit(X).transform(X)
    encoder = CategoryEncoder(CATEGORICAL_NETWORK).fit(cleaned)
    return encoder.transform(cleaned), encoder


def test_category_encoder_maps_unseen_prefix_value_to_unknown(network_frame):
    X = network_frame[input_columns(NETWORK)]
    assert "ftp" in set(X["service"]) and "ftp-data" not in set(X["service"])
    encoder = CategoryEncoder(CATEGORICAL_NETWORK).fit(X)
    ftp_code = encoder.vocabulary_["service"]["ftp"]

    unseen = X.head(3).assign(service=["ftp-data", "ftp", "FTP"])
    codes = encoder.transform(unseen)["service"].tolist()

    assert codes == [UNKNOWN_CODE, ftp_code, UNKNOWN_CODE]
    assert ftp_code != UNKNOWN_CODE
    assert UNKNOWN_CODE not in encoder.vocabulary_["service"].values()


def test_category_encoder_gives_dash_its_own_level(network_frame):
    X = network_frame[input_columns(NETWORK)]

    encoder = CategoryEncoder(CATEGORICAL_NETWORK).fit(X)

    vocabulary = encoder.vocabulary_["service"]
    assert "-" in vocabulary
    assert vocabulary["-"] != UNKNOWN_CODE
    assert len(set(vocabulary.values())) == len(vocabulary)
    dash = (X["service"] == "-").to_numpy()
    assert (encoder.transform(X)["service"].to_numpy()[dash] == vocabulary["-"]).all()


def test_record_cleaner_fills_nan_and_inf_with_training_median():
    fridge = load_dataset("fridge").records
    columns = input_columns(get_spec("fridge"))
    train = fridge.loc[fridge["type"] == "normal", columns]
    test = fridge.loc[fridge["type"] == "ddos", columns].head(6).copy()
    train_median = train["fridge_temperature"].median()
    assert train_median != test["fridge_temperature"].median()
    test["fridge_temperature"] = [np.nan, np.inf, -np.inf, 1.5, np.nan, 40.0]

    cleaner = RecordCleaner(("temp_condition",)).fit(train)
    filled = cleaner.transform(test)["fridge_temperature"].tolist()

    assert cleaner.medians_["fridge_temperature"] == train_median
    assert filled == [train_median, train_median, train_median, 1.5, train_median, 40]


def test_record_cleaner_fills_absent_device_column_with_zero_not_median():
    spec = get_spec("telemetry_combined")
    parts = []
    for device in ("gps_tracker", "fridge"):
        raw, _ = read_raw(
            dataset_path(get_spec(device), resolve_data_dir()), get_spec(device)
        )
        parts.append(raw.head(400).assign(device=device))
    records = normalize_records(pd.concat(parts, ignore_index=True), spec)
    gps = records.loc[records["device"] == "gps_tracker", input_columns(spec)]
    fridge = records.loc[records["device"] == "fridge", input_columns(spec)].copy()
    fridge["latitude"] = np.nan
    categorical = ("device", "temp_condition", "door_state", "light_status")

    cleaner = RecordCleaner(categorical).fit(gps)
    cleaned = cleaner.transform(fridge)

    assert cleaner.medians_["latitude"] > 1
    assert (fridge[absent_column("latitude")] == 1).all()
    assert (cleaned["latitude"] == 0.0).all()
    assert (cleaned[absent_column("latitude")] == 1.0).all()


@pytest.mark.parametrize("name, kept", [("windows10", 20), ("windows7", 25)])
def test_relieff_selector_keeps_paper_count_with_spaced_names(tmp_path, name, kept):
    write_windows_dataset(tmp_path, name, n_rows=600, seed=3)
    records = load_dataset(name, tmp_path).records
    spec = get_spec(name)
    X = (
        RecordCleaner()
        .fit(records[input_columns(spec)])
        .transform(records[input_columns(spec)])
    )

    selector = ReliefFSelector(spec.relieff_features, max_rows=300).fit(
        X, records["type"]
    )

    assert spec.relieff_features == kept
    assert len(selector.selected_) == kept
    assert list(selector.transform(X).columns) == selector.selected_
    assert set(selector.selected_) <= set(spec.columns)
    # Names keep their inner and double spaces through the CSV and the selector.
    assert "LogicalDisk(_Total) Avg  Disk Bytes Write" in X.columns
    assert "Processor_pct_ Idle_Time" in X.columns
    # The generated signal (mitm and ransomware aside, too few rows) is kept.
    strong = [c for c in SIGNAL_COLUMNS if not c.startswith("LogicalDisk")]
    assert set(strong) <= set(selector.selected_)
    assert "Processor_pct_ Processor_Time" in selector.selected_


def _with_class_sizes(frame: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """Three large real classes plus real classes cut to ``sizes`` rows."""
    parts = [frame.loc[frame["type"].isin(["normal", "dos", "xss"])]]
    for cls, rows in sizes.items():
        parts.append(frame.loc[frame["type"] == cls].head(rows))
    return pd.concat(parts).reset_index(drop=True)


def test_safe_smote_shrinks_k_neighbors_for_a_three_row_class(network_frame, caplog):
    frame = _with_class_sizes(network_frame, {"mitm": 3})
    X, _ = _encoded(frame)
    y = frame["type"].to_numpy()

    with caplog.at_level(logging.INFO, logger="ids.balancing"):
        X_res, y_res = SafeSMOTE(CATEGORICAL_NETWORK, seed=0).fit_resample(X, y)

    assert "k_neighbors=2" in caplog.text
    before = pd.Series(y).value_counts()
    after = pd.Series(y_res).value_counts()
    raised = after.index[after > before.reindex(after.index)]
    assert "mitm" in raised
    # Every raised class reaches the same size, whatever that target is.
    assert after[raised].nunique() == 1
    assert len(X_res) == len(y_res)
    np.testing.assert_array_equal(X_res.to_numpy()[: len(X)], X.to_numpy())


def test_safe_smote_leaves_single_row_class_with_warning(network_frame):
    frame = _with_class_sizes(network_frame, {"mitm": 1, "injection": 3})
    X, _ = _encoded(frame)
    y = frame["type"].to_numpy()

    with pytest.warns(UserWarning, match=r"\['mitm'\] have a single training row"):
        X_res, y_res = SafeSMOTE(CATEGORICAL_NETWORK, seed=0).fit_resample(X, y)

    counts = pd.Series(y_res).value_counts()
    assert counts["mitm"] == 1
    assert counts["injection"] > 3
    mitm_row = X_res.to_numpy()[y_res == "mitm"]
    np.testing.assert_array_equal(mitm_row, X.to_numpy()[y == "mitm"])


def test_safe_smote_synthetic_rows_carry_only_existing_codes(network_frame):
    X, encoder = _encoded(network_frame)
    y = network_frame["type"].to_numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X_res, y_res = SafeSMOTE(CATEGORICAL_NETWORK, seed=0).fit_resample(X, y)

    assert len(X_res) > len(X)
    for column, vocabulary in encoder.vocabulary_.items():
        codes = set(np.unique(X_res[column]))
        assert codes <= set(vocabulary.values()), column
        assert codes <= set(np.unique(X[column])), column
    # A continuous column does get interpolated values: the rows are synthetic.
    assert len(set(X_res["duration"]) - set(X["duration"])) > 100


def _fitted_on_split(frame: pd.DataFrame):
    X = frame[input_columns(NETWORK)]
    y = frame["type"].to_numpy()
    split = stratified_split(y, seed=0)
    preprocessor = build_preprocessor(NETWORK, seed=0)
    fitted, X_train, y_train = fit_preprocessor(
        preprocessor, X.iloc[split.train], y[split.train]
    )
    return X, y, split, fitted, X_train, y_train


def test_fit_preprocessor_fits_every_step_on_training_rows_only(network_frame):
    frame = network_frame.copy()
    test_rows = stratified_split(frame["type"].to_numpy(), seed=0).test
    planted = frame.index[test_rows[:5]]
    frame.loc[planted, "service"] = "only-in-test"
    frame.loc[planted, "duration"] = 1e12

    X, y, split, fitted, X_train, y_train = _fitted_on_split(frame)

    assert set(planted) <= set(split.test)
    vocabulary = fitted.named_steps["encode"].vocabulary_["service"]
    assert "only-in-test" not in vocabulary
    assert set(vocabulary) == set(X.iloc[split.train]["service"])
    scaler = fitted.named_steps["scale"]
    before_scaling = [s for s in fitted.steps[:-1] if not hasattr(s[1], "fit_resample")]
    encoded_train = Pipeline(before_scaling).transform(X.iloc[split.train])
    np.testing.assert_allclose(scaler.data_min_, encoded_train.min(axis=0))
    np.testing.assert_allclose(scaler.data_max_, encoded_train.max(axis=0))
    duration = scaler.columns_.index("duration")
    assert scaler.data_max_[duration] < np.log1p(1e12) - 1
    # The scaler saw the resampled matrix: every column spans exactly [0, 1].
    spread = scaler.data_max_ > scaler.data_min_
    np.testing.assert_allclose(X_train.min(axis=0)[spread], 0, atol=1e-6)
    np.testing.assert_allclose(X_train.max(axis=0)[spread], 1, atol=1e-6)
    assert len(y_train) > len(split.train)


def test_transform_records_never_resamples_test_rows(network_frame):
    X, y, split, fitted, X_train, _ = _fitted_on_split(network_frame)
    test = X.iloc[split.test]

    X_test = transform_records(fitted, test)

    assert X_test.shape == (len(split.test), len(selected_features(fitted)))
    # Row for row the same as scoring each real test row alone.
    for position in (0, len(test) // 2, len(test) - 1):
        alone = transform_records(fitted, test.iloc[[position]])
        np.testing.assert_array_equal(alone[0], X_test[position])
    assert len(transform_records(fitted, X.iloc[split.train])) == len(split.train)
    assert len(X_train) > len(split.train)


def test_transform_columns_takes_features_by_name_not_order(network_frame):
    X, _, split, fitted, _, _ = _fitted_on_split(network_frame)
    test = X.iloc[split.test]
    columns = frame_columns(test)
    reversed_order = dict(reversed(list(columns.items())))
    # As a service gets them: categories as plain lists of strings.
    as_sent = {
        c: v.tolist() if v.dtype == object else v for c, v in reversed_order.items()
    }

    expected = transform_records(fitted, test)

    np.testing.assert_array_equal(transform_columns(fitted, reversed_order), expected)
    np.testing.assert_array_equal(transform_columns(fitted, as_sent), expected)
    # The frame transform of every step is its column transform.
    steps = [s for _, s in fitted.steps if not hasattr(s, "fit_resample")]
    frame, out = test, columns
    for step in steps[:-1]:
        frame, out = step.transform(frame), step.transform_columns(out)
        assert list(frame.columns) == list(out)
    matrix = steps[-1].transform(frame).astype(np.float32)
    np.testing.assert_array_equal(matrix, expected)


def test_column_min_max_scaler_matches_scikit_learn_and_clips(network_frame):
    from sklearn.preprocessing import MinMaxScaler

    numbers = network_frame[["duration", "src_bytes", "dst_pkts"]].astype(float)
    train, test = numbers.iloc[:2000], numbers.iloc[2000:].copy()
    test.iloc[0] = [-5.0, 1e15, 0.0]  # below and above the training range

    ours = ColumnMinMaxScaler(clip=True).fit(train)
    reference = MinMaxScaler(clip=True).fit(train.to_numpy())
    shuffled = dict(reversed(list(frame_columns(test).items())))

    expected = reference.transform(test.to_numpy())
    np.testing.assert_allclose(ours.transform_columns(shuffled), expected)
    assert ours.transform(test)[0].tolist() == [0.0, 1.0, expected[0, 2]]


def test_record_cleaner_rejects_records_missing_a_field(network_frame):
    X = network_frame[input_columns(NETWORK)]
    cleaner = RecordCleaner(CATEGORICAL_NETWORK).fit(X)

    with pytest.raises(ValueError, match=r"field\(s\) \['proto'\] missing"):
        cleaner.transform(X.drop(columns=["proto"]))


def test_category_encoder_rejects_non_frame():
    with pytest.raises(TypeError, match="expected a pandas DataFrame"):
        CategoryEncoder(("service",)).fit(np.zeros((2, 2)))
