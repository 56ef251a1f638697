"""Tests of ids.data: every loader quirk of the real files, releases, bad input."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ids.catalog import TELEMETRY_DEVICES, dataset_path, get_spec, resolve_data_dir
from ids.data import (
    RecordError,
    absent_column,
    input_columns,
    load_dataset,
    normalize_records,
    read_raw,
)

NETWORK_SLICE_ROWS = 3000


def real_path(name: str) -> Path:
    """Path of a real file in the shared data folder (fails if it is missing)."""
    path = dataset_path(get_spec(name), resolve_data_dir())
    assert path.is_file(), f"real ToN-IoT file {path} is missing"
    return path


def write_slice(name: str, data_dir: Path, n_rows: int) -> Path:
    """The first ``n_rows`` records of a real file, bytes untouched, laid out
    as the official download lays them out."""
    lines = real_path(name).read_bytes().split(b"\n")
    target = dataset_path(get_spec(name), data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\n".join(lines[: n_rows + 1]) + b"\n")
    return target


def write_network_slice(data_dir: Path, with_ts: bool = False) -> Path:
    """A seeded random sample of real network rows (every class, some numeric
    http_trans_depth), optionally with a ``ts`` column put in front."""
    header, *body = real_path("network").read_text().splitlines(keepends=True)
    depth = header.split(",").index("http_trans_depth")
    numeric = [i for i, line in enumerate(body) if line.split(",")[depth] != "-"]
    sample = random.Random(0).sample(range(len(body)), NETWORK_SLICE_ROWS)
    rows = [body[i] for i in sorted(set(sample) | set(numeric[:40]))]
    if with_ts:
        header = "ts," + header
        rows = [f"{1_554_000_000 + i}," + row for i, row in enumerate(rows)]
    target = dataset_path(get_spec("network"), data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + "".join(rows))
    return target


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("network")
    write_network_slice(root)
    return root


@pytest.fixture(scope="module")
def network(network_dir):
    return load_dataset("network", network_dir)


def _raw_and_typed(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    spec = get_spec(name)
    raw, _ = read_raw(real_path(name), spec)
    return raw, normalize_records(raw, spec)


def test_read_raw_drops_byte_order_mark():
    path = real_path("fridge")
    assert path.read_bytes().startswith(b"\xef\xbb\xbfts,")

    raw, _ = read_raw(path, get_spec("fridge"))

    assert raw.columns[0] == "ts"
    assert not any("\ufeff" in column for column in raw.columns)


def test_read_raw_drops_carriage_return_of_crlf_lines():
    path = real_path("fridge")
    assert b"\r\n" in path.read_bytes()[:200]

    raw, _ = read_raw(path, get_spec("fridge"))

    assert raw.columns[-1] == "type"
    assert not raw["type"].str.contains("\r").any()
    assert set(raw["type"]) <= {"normal", "backdoor", "ddos", "injection"} | {
        "password",
        "ransomware",
        "xss",
    }


@pytest.mark.parametrize(
    "name, column, padded, stripped, levels",
    [
        ("fridge", "temp_condition", "low  ", "low", {"low", "high"}),
        ("fridge", "temp_condition", "high ", "high", {"low", "high"}),
        ("motion_light", "light_status", " on", "on", {"on", "off"}),
        ("motion_light", "light_status", " off", "off", {"on", "off"}),
    ],
)
def test_normalize_records_strips_padded_strings(
    name, column, padded, stripped, levels
):
    raw, typed = _raw_and_typed(name)
    was_padded = (raw[column] == padded).to_numpy()
    assert was_padded.any(), f"{padded!r} no longer in the real {name} file"

    assert set(typed.loc[was_padded, column]) == {stripped}
    assert set(typed[column]) == levels


def test_load_dataset_strips_padded_time():
    raw, _ = read_raw(real_path("fridge"), get_spec("fridge"))
    assert raw["time"].iloc[0] == " 19:19:40 "

    loaded = load_dataset("fridge")

    assert loaded.records["time"].iloc[0] == "19:19:40"
    assert not loaded.records["time"].str.startswith(" ").any()
    assert not loaded.records["time"].str.endswith(" ").any()


def test_normalize_records_reads_words_and_digits_in_one_boolean_column():
    raw, typed = _raw_and_typed("garage_door")

    by_raw = typed.groupby(raw["sphone_signal"].to_numpy())["sphone_signal"].unique()

    assert {k: list(v) for k, v in by_raw.items()} == {
        "true  ": [1.0],
        "false  ": [0.0],
        "1": [1.0],
        "0": [0.0],
    }
    assert typed["sphone_signal"].dtype == np.float64


def test_load_dataset_keeps_dash_as_categorical_level(network):
    service = network.records["service"]

    assert "-" in set(service)
    assert {"dns", "http", "ftp"} <= set(service)
    assert service.map(type).eq(str).all()


def test_load_dataset_marks_dash_in_numeric_column_absent(network, network_dir):
    raw, _ = read_raw(
        dataset_path(get_spec("network"), network_dir), get_spec("network")
    )
    records = network.records
    dash = (raw["http_trans_depth"] == "-").to_numpy()
    assert dash.any() and (~dash).any()

    assert records.loc[dash, "http_trans_depth"].isna().all()
    assert (records.loc[dash, absent_column("http_trans_depth")] == 1.0).all()
    assert (records.loc[~dash, absent_column("http_trans_depth")] == 0.0).all()
    expected = raw.loc[~dash, "http_trans_depth"].astype(float).to_numpy()
    np.testing.assert_array_equal(records.loc[~dash, "http_trans_depth"], expected)


@pytest.mark.parametrize(
    "column", ["http_trans_depth", "weird_addl", "duration", "src_bytes", "dns_qtype"]
)
def test_load_dataset_parses_numbers_stored_as_text(network, network_dir, column):
    raw, _ = read_raw(
        dataset_path(get_spec("network"), network_dir), get_spec("network")
    )
    assert raw[column].map(type).eq(str).all()

    assert network.records[column].dtype == np.float64
    text = raw[column].where(raw[column] != "-")
    np.testing.assert_allclose(
        network.records[column].dropna().to_numpy(), text.dropna().astype(float)
    )


@pytest.mark.parametrize(
    "name, release, has_ts",
    [
        ("fridge", "newer (ts,date,time)", True),
        ("thermostat", "newer (ts,date,time)", True),
        ("weather", "older (date,time)", False),
    ],
)
def test_load_dataset_names_telemetry_release(name, release, has_ts, caplog):
    with caplog.at_level(logging.INFO, logger="ids.data"):
        loaded = load_dataset(name, max_rows=2000)

    assert loaded.release == release
    assert loaded.fingerprint["release"] == release
    assert ("ts" in loaded.records.columns) is has_ts
    assert release in caplog.text


def test_load_dataset_names_older_network_release(network, network_dir, caplog):
    with caplog.at_level(logging.INFO, logger="ids.data"):
        load_dataset("network", network_dir)

    assert network.release == "older (211,043 rows, no ts)"
    assert "older (211,043 rows, no ts)" in caplog.text
    assert "ts" not in network.records.columns


def test_load_dataset_reads_network_file_with_ts_as_newer_release(tmp_path, caplog):
    write_network_slice(tmp_path, with_ts=True)

    with caplog.at_level(logging.INFO, logger="ids.data"):
        loaded = load_dataset("network", tmp_path)

    assert loaded.release == "newer (461,043 rows, with ts)"
    assert "newer (461,043 rows, with ts)" in caplog.text
    assert loaded.records["ts"].iloc[0] == "1554000000"
    assert "ts" not in input_columns(get_spec("network"))


def test_load_dataset_logs_rows_read_and_dropped_with_reason(tmp_path, caplog):
    path = write_slice("fridge", tmp_path, 500)
    lines = path.read_bytes().split(b"\n")
    # A normal row relabelled as an attack: label and type disagree.
    assert lines[1].endswith(b",1,ddos\r")
    lines[1] = lines[1].replace(b",1,ddos\r", b",1,normal\r")
    path.write_bytes(b"\n".join(lines))

    with caplog.at_level(logging.INFO, logger="ids.data"):
        loaded = load_dataset("fridge", tmp_path, max_rows=200)

    assert loaded.rows_read == 500
    assert loaded.rows_dropped["label disagrees with type"] == 1
    assert loaded.rows_dropped["max_rows sample"] == 500 - 1 - len(loaded.records)
    assert "500 rows" in caplog.text
    assert "label disagrees with type" in caplog.text
    assert "max_rows sample" in caplog.text


def test_load_dataset_samples_every_class_under_max_rows():
    loaded = load_dataset("fridge", max_rows=3000)

    assert len(loaded.records) <= 3000
    assert set(loaded.records["type"]) == {
        "normal",
        "backdoor",
        "ddos",
        "injection",
        "password",
        "ransomware",
        "xss",
    }


@pytest.fixture(scope="module")
def combined():
    return load_dataset("telemetry_combined", max_rows=7000)


def test_load_dataset_combined_holds_union_of_device_columns(combined):
    expected = {"device"}
    for spec in TELEMETRY_DEVICES.values():
        expected |= set(spec.feature_columns)

    assert set(get_spec("telemetry_combined").feature_columns) == expected
    assert expected <= set(combined.records.columns)
    assert set(combined.records["device"]) == set(TELEMETRY_DEVICES)
    assert set(input_columns(get_spec("telemetry_combined"))) >= expected


def test_load_dataset_combined_marks_missing_device_columns_absent(combined):
    records = combined.records
    fridge = (records["device"] == "fridge").to_numpy()
    gps = (records["device"] == "gps_tracker").to_numpy()

    assert (records.loc[fridge, "latitude"] == 0.0).all()
    assert (records.loc[fridge, absent_column("latitude")] == 1.0).all()
    assert (records.loc[gps, absent_column("latitude")] == 0.0).all()
    # Never a median: GPS latitudes are far from 0, the fill stays 0.
    assert records.loc[gps, "latitude"].median() > 1
    assert (records.loc[gps, absent_column("fridge_temperature")] == 1.0).all()
    assert (records.loc[gps, "fridge_temperature"] == 0.0).all()
    # A categorical column a device lacks is the '-' level.
    assert set(records.loc[gps, "temp_condition"]) == {"-"}
    assert set(records.loc[fridge, "temp_condition"]) == {"low", "high"}


def _copy_network_as_fridge(data_dir: Path) -> None:
    target = dataset_path(get_spec("fridge"), data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = data_dir / "scratch"
    shutil.copy(write_network_slice(scratch), target)


def _write_empty(data_dir: Path) -> None:
    target = dataset_path(get_spec("fridge"), data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"")


def _write_header_only(data_dir: Path) -> None:
    target = dataset_path(get_spec("fridge"), data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(real_path("fridge").read_bytes().split(b"\n")[0] + b"\n")


def _write_truncated(data_dir: Path) -> None:
    path = write_slice("fridge", data_dir, 300)
    lines = path.read_bytes().rstrip(b"\n").split(b"\n")
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    path.write_bytes(b"\n".join(lines))


def _write_bad_number(data_dir: Path) -> None:
    path = write_slice("fridge", data_dir, 300)
    lines = path.read_bytes().split(b"\n")
    fields = lines[5].split(b",")
    fields[3] = b"warm"
    lines[5] = b",".join(fields)
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize(
    "write, error, message",
    [
        (None, FileNotFoundError, r"Train_Test_IoT_Fridge\.csv' not found"),
        (
            _copy_network_as_fridge,
            RecordError,
            r"column\(s\) \['date', 'time', 'fridge_temperature', 'temp_condition'\] "
            r"missing from Train_Test_IoT_Fridge\.csv; expected the 6-column fridge",
        ),
        (_write_empty, RecordError, r"Train_Test_IoT_Fridge\.csv is empty; expected"),
        (
            _write_header_only,
            RecordError,
            r"Train_Test_IoT_Fridge\.csv has a header but no rows; expected",
        ),
        (
            _write_truncated,
            RecordError,
            r"Train_Test_IoT_Fridge\.csv: line 301 is truncated or short: column "
            r"'type' is empty",
        ),
        (
            _write_bad_number,
            RecordError,
            r"fridge: column 'fridge_temperature' expects a number; row\(s\) \[4\] "
            r"hold \['warm'\]",
        ),
    ],
    ids=["missing", "other-schema", "empty", "header-only", "truncated", "bad-value"],
)
def test_load_dataset_rejects_bad_file(tmp_path, write, error, message):
    if write is not None:
        write(tmp_path)

    with pytest.raises(error, match=message):
        load_dataset("fridge", tmp_path)


def test_load_dataset_missing_file_message_names_the_path(tmp_path):
    expected = dataset_path(get_spec("fridge"), tmp_path.resolve())

    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fridge", tmp_path)

    assert str(expected) in str(info.value)


def test_resolve_data_dir_rejects_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"

    with pytest.raises(FileNotFoundError, match=r"nowhere' does not exist"):
        load_dataset("fridge", missing)


def test_normalize_records_names_missing_field():
    raw, _ = read_raw(real_path("fridge"), get_spec("fridge"))

    with pytest.raises(RecordError, match=r"field\(s\) \['temp_condition'\] missing"):
        normalize_records(
            raw.drop(columns=["temp_condition"]).head(5), get_spec("fridge")
        )
