"""Tests of the GX suites in expectations/ on the real ToN-IoT files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ids import validation
from ids.catalog import CLASSES, WINDOWS7, dataset_path, get_spec, resolve_data_dir
from ids.validation import (
    CONTEXT_ROOT,
    SUITE_DATASETS,
    build_data_docs,
    build_suite,
    prepare_frame,
    validate_file,
)

REAL_DATASETS = [n for n in SUITE_DATASETS if not n.startswith("windows")]


@pytest.fixture(autouse=True)
def _no_gx_analytics(monkeypatch):
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")


def _copy_context(target: Path) -> Path:
    # Results and Data Docs of earlier runs are not part of the committed context.
    shutil.copytree(CONTEXT_ROOT, target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


@pytest.fixture(scope="module")
def context_root(tmp_path_factory) -> Path:
    """A module-wide temporary copy of the committed GX context."""
    return _copy_context(tmp_path_factory.mktemp("gx") / "expectations")


@pytest.fixture(scope="module")
def data_dir() -> Path:
    # No skip: a missing data folder fails here with the folder it looked for.
    return resolve_data_dir()


def _raw(name: str, data_dir: Path) -> pd.DataFrame:
    path = dataset_path(get_spec(name), data_dir)
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _failed_columns(report) -> set:
    return {item["column"] for item in report.failed}


def _failed_types(report, column: str) -> set:
    return {item["expectation"] for item in report.failed if item["column"] == column}


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_validate_file_passes_every_real_file(name, data_dir, context_root):
    report = validate_file(name, data_dir=data_dir, context_root=context_root)

    assert report.success, report.to_markdown()
    assert report.failed == []
    assert report.rows == len(_raw(name, data_dir))
    evaluated = report.statistics["evaluated_expectations"]
    assert evaluated == report.statistics["successful_expectations"] > 0


def _drop(column):
    return lambda frame: frame.drop(columns=[column])


def _rename(column, new):
    return lambda frame: frame.rename(columns={column: new})


def _set(column, value, rows=slice(None)):
    def corrupt(frame):
        frame = frame.copy()
        frame.loc[frame.index[rows], column] = value
        return frame

    return corrupt


@pytest.mark.parametrize(
    "name, corrupt, column, expectation",
    [
        ("fridge", _drop("temp_condition"), "temp_condition", "expect_column_to_exist"),
        (
            "garage_door",
            _rename("door_state", "doorstate"),
            "door_state",
            "expect_column_to_exist",
        ),
        (
            "motion_light",
            _set("light_status", ""),
            "light_status",
            "expect_column_values_to_not_be_null",
        ),
        (
            "garage_door",
            _set("sphone_signal", "  "),
            "sphone_signal",
            "expect_column_values_to_not_be_null",
        ),
        (
            "thermostat",
            _set("current_temperature", "99.5", slice(0, 50)),
            "current_temperature",
            "expect_column_values_to_be_between",
        ),
        (
            "weather",
            _set("humidity", "-3", slice(100, 110)),
            "humidity",
            "expect_column_values_to_be_between",
        ),
        (
            "fridge",
            _set("temp_condition", "medium", slice(0, 5)),
            "temp_condition",
            "expect_column_values_to_be_in_set",
        ),
        (
            "gps_tracker",
            _set("latitude", "north", slice(0, 5)),
            "latitude",
            "expect_column_values_to_not_be_null",
        ),
        (
            "modbus",
            _set("type", "ddos2", slice(0, 5)),
            "type",
            "expect_column_values_to_be_in_set",
        ),
    ],
)
def test_validate_file_lists_the_broken_expectation(
    name, corrupt, column, expectation, data_dir, context_root, tmp_path
):
    path = _write(corrupt(_raw(name, data_dir)), tmp_path / f"{name}.csv")

    report = validate_file(name, path, context_root=context_root)

    assert not report.success
    assert _failed_columns(report) == {column}, report.to_markdown()
    assert expectation in _failed_types(report, column)


def test_validate_file_fails_row_count_of_a_header_only_file(
    data_dir, context_root, tmp_path
):
    path = _write(_raw("weather", data_dir).head(0), tmp_path / "weather.csv")

    report = validate_file("weather", path, context_root=context_root)

    assert not report.success
    assert report.rows == 0
    kinds = {item["expectation"] for item in report.failed}
    assert "expect_table_row_count_to_be_between" in kinds


@pytest.mark.parametrize(
    "content, message",
    [(b"", "file is empty"), (b"\xff\xfe\x00\x81 not text\n", "unreadable")],
)
def test_validate_file_reports_unreadable_file(
    content, message, context_root, tmp_path
):
    path = tmp_path / "fridge.csv"
    path.write_bytes(content)

    report = validate_file("fridge", path, context_root=context_root)

    assert not report.success
    assert report.failed[0]["expectation"] == "read_csv"
    assert message in report.failed[0]["observed"]
    assert message in report.to_markdown()


@pytest.mark.parametrize(
    "name, path, error, message",
    [
        ("fridge", "nowhere/fridge.csv", FileNotFoundError, "nowhere/fridge.csv"),
        ("telemetry_combined", None, ValueError, "validate each member file"),
        ("toaster", None, ValueError, "unknown dataset 'toaster'"),
    ],
)
def test_validate_file_rejects_bad_arguments(name, path, error, message, context_root):
    with pytest.raises(error, match=message):
        validate_file(name, path, context_root=context_root)


def test_validate_file_without_suite_says_how_to_build_it(data_dir, tmp_path):
    with pytest.raises(LookupError, match="regenerate --dataset weather"):
        validate_file("weather", data_dir=data_dir, context_root=tmp_path / "empty")


def test_validate_file_accepts_the_newer_network_release_layout(
    data_dir, context_root, tmp_path
):
    raw = _raw("network", data_dir)
    raw.insert(0, "ts", (1_554_000_000 + np.arange(len(raw))).astype(str))
    path = _write(raw, tmp_path / "train_test_network.csv")

    report = validate_file("network", path, context_root=context_root)

    assert report.success, report.to_markdown()
    assert report.release.startswith("newer")


@pytest.mark.parametrize("name, newer", [("fridge", False), ("weather", True)])
def test_validate_file_accepts_both_telemetry_releases(
    name, newer, data_dir, context_root, tmp_path
):
    raw = _raw(name, data_dir)
    if newer:
        raw.insert(0, "ts", (1_556_000_000 + np.arange(len(raw))).astype(str))
    else:
        raw = raw.drop(columns=["ts"])
    path = _write(raw, tmp_path / f"{name}.csv")

    report = validate_file(name, path, context_root=context_root)

    assert report.success, report.to_markdown()
    assert report.release.startswith("newer" if newer else "older")


def test_prepare_frame_types_values_like_the_loader(data_dir):
    raw = _raw("garage_door", data_dir)
    rows = pd.concat([raw[raw.label == "0"].head(3), raw[raw.label == "1"].head(3)])

    frame = prepare_frame(rows, get_spec("garage_door"))

    assert set(frame["sphone_signal"]) <= {0.0, 1.0}
    assert frame["time"].str.startswith(" ").sum() == 0
    assert str(frame["door_state"].dtype) == "string"
    assert frame["label"].dtype == np.float64


def test_prepare_frame_turns_dash_into_null_only_in_numeric_columns(data_dir):
    rows = _raw("network", data_dir).head(200)

    frame = prepare_frame(rows, get_spec("network"))

    assert (
        frame["http_trans_depth"].isna().sum() == (rows.http_trans_depth == "-").sum()
    )
    assert (frame["dns_AA"] == "-").sum() == (rows.dns_AA == "-").sum()


def test_build_suite_regenerates_into_a_copy(data_dir, tmp_path):
    committed = CONTEXT_ROOT / "gx" / "expectations" / "fridge.json"
    before = hashlib.md5(committed.read_bytes()).hexdigest()
    root = _copy_context(tmp_path / "expectations")
    (root / "gx" / "expectations" / "fridge.json").unlink()

    suite = build_suite("fridge", data_dir=data_dir, context_root=root)
    report = validate_file("fridge", data_dir=data_dir, context_root=root)

    assert (root / "gx" / "expectations" / "fridge.json").is_file()
    assert suite.meta["rows"] == report.rows == 59_944
    assert report.success, report.to_markdown()
    assert hashlib.md5(committed.read_bytes()).hexdigest() == before


def test_build_suite_from_schema_keeps_windows_column_names(tmp_path):
    root = tmp_path / "expectations"
    empty_data = tmp_path / "data"
    empty_data.mkdir()

    suite = build_suite("windows7", data_dir=empty_data, context_root=root)

    columns = {e.column for e in suite.expectations if hasattr(e, "column")}
    assert "LogicalDisk(_Total) Avg  Disk Bytes Write" in columns
    assert "Processor_pct_ Idle_Time" in columns
    assert "ts" not in columns
    assert "schema" in suite.meta["source"]


def _windows7_records(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    columns = [c for c in WINDOWS7.columns if c != "ts"]
    frame = pd.DataFrame(rng.gamma(2.0, 50.0, (rows, len(columns))), columns=columns)
    frame["label"] = rng.integers(0, 2, rows)
    frame["type"] = np.where(frame["label"] == 0, "normal", rng.choice(CLASSES[1:]))
    return frame


def test_validate_file_checks_generated_windows_records(context_root, tmp_path):
    good = _write(_windows7_records(), tmp_path / "good.csv")
    column = "LogicalDisk(_Total) Avg  Disk Bytes Write"
    bad = _write(_windows7_records().drop(columns=[column]), tmp_path / "bad.csv")

    passed = validate_file("windows7", good, context_root=context_root)
    failed = validate_file("windows7", bad, context_root=context_root)

    assert passed.success, passed.to_markdown()
    assert not failed.success
    assert _failed_columns(failed) == {column}


def test_report_markdown_tables_failed_expectations(data_dir, context_root, tmp_path):
    corrupt = _set("humidity", "250", slice(0, 3))
    path = _write(corrupt(_raw("weather", data_dir)), tmp_path / "weather.csv")

    text = validate_file("weather", path, context_root=context_root).to_markdown()

    assert text.startswith("### Validation of `weather`: FAILED")
    assert "| expect_column_values_to_be_between | humidity |" in text
    assert "3 unexpected" in text


def test_build_data_docs_writes_a_local_site(data_dir, tmp_path):
    root = _copy_context(tmp_path / "expectations")
    validate_file("weather", data_dir=data_dir, context_root=root)

    index = build_data_docs(root)

    assert index.name == "index.html" and index.is_file()
    assert index.is_relative_to(root / "gx" / "uncommitted")
    assert "weather" in index.read_text()


def test_cli_check_prints_summary_and_exit_code(data_dir, context_root, capsys):
    argv = ["--context-root", str(context_root), "check", "weather"]

    code = validation.main([*argv, "--data-dir", str(data_dir)])

    assert code == 0
    assert "### Validation of `weather`: passed" in capsys.readouterr().out


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        validation.main(["--help"])

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("regenerate", "docs", "check"))


def _committed_suite(name: str) -> list[dict]:
    path = CONTEXT_ROOT / "gx" / "expectations" / f"{name}.json"
    return json.loads(path.read_text())["expectations"]


@pytest.mark.parametrize("name", SUITE_DATASETS)
def test_committed_suite_pairs_every_value_set_with_not_null(name):
    suite = _committed_suite(name)
    in_set = {e["kwargs"]["column"] for e in suite if e["type"].endswith("in_set")}
    not_null = {
        e["kwargs"]["column"]
        for e in suite
        if e["type"] == "expect_column_values_to_not_be_null"
        and e["kwargs"].get("mostly", 1.0) > 0
    }

    assert {"label", "type"} <= in_set
    assert in_set <= not_null


def test_committed_network_suite_leaves_open_vocabularies_open():
    suite = _committed_suite("network")
    in_set = {e["kwargs"]["column"] for e in suite if e["type"].endswith("in_set")}
    columns = {e["kwargs"].get("column") for e in suite}

    assert {"proto", "conn_state", "dns_AA", "ssl_resumed", "weird_notice"} <= in_set
    assert not in_set & {"service", "dns_query", "http_uri", "ssl_subject"}
    assert "ts" not in columns
