"""Tests of ids.audit: planted proxies are flagged, noise is not, real data too."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from windows_data import SIGNAL_COLUMNS, write_windows_dataset

from ids.audit import audit_leakage
from ids.catalog import get_spec
from ids.data import input_columns, load_dataset


def _planted(n_rows: int = 4000, seed: int = 1):
    rng = np.random.default_rng(seed)
    label = pd.Series(rng.integers(0, 2, n_rows))
    records = pd.DataFrame(
        {
            # A code that names the label, with a little variety per label.
            "proxy": np.where(label == 1, "host-b", "host-a"),
            "unique_noise": rng.standard_normal(n_rows),
            "weak": np.where(rng.random(n_rows) < 0.7, label, 1 - label),
        }
    )
    formats = pd.DataFrame(
        {
            "status": np.where(label == 1, "0|0|digits", "0|2|lower"),
            "plain": np.full(n_rows, "0|0|lower"),
        }
    )
    return records, label, formats


def test_audit_leakage_flags_planted_feature_proxy():
    records, label, formats = _planted()

    report = audit_leakage(records, label, formats)

    flagged = {(f["column"], f["source"]) for f in report.findings}
    assert ("proxy", "feature") in flagged
    assert report.drop_columns == ["proxy"]


def test_audit_leakage_flags_planted_format_proxy_without_dropping_it():
    records, label, formats = _planted()

    report = audit_leakage(records, label, formats)

    status = [f for f in report.findings if f["column"] == "status"]
    assert status and status[0]["source"] == "format"
    assert status[0]["accuracy"] == 1.0
    assert "status" not in report.drop_columns
    assert "plain" not in {f["column"] for f in report.findings}


def test_audit_leakage_ignores_unique_per_row_noise():
    records, label, formats = _planted()

    report = audit_leakage(records, label, formats)

    scores = {s["column"]: s for s in report.scores}
    assert "unique_noise" not in report.drop_columns
    assert scores["unique_noise"]["distinct_values"] == len(records)
    assert scores["unique_noise"]["accuracy"] < 0.6
    assert "weak" not in report.drop_columns


def test_audit_leakage_skips_when_majority_share_reaches_threshold():
    label = pd.Series([0] * 995 + [1] * 5)
    records = pd.DataFrame({"constant": np.zeros(1000)})

    report = audit_leakage(records, label, threshold=0.99)

    assert report.findings == [] and report.drop_columns == []
    assert "skipped" in report.note
    assert "skipped" in report.to_markdown()


def test_audit_leakage_markdown_lists_findings():
    records, label, formats = _planted()

    text = audit_leakage(records, label, formats).to_markdown()

    assert "`proxy` | feature | 1.0000" in text
    assert "`status` | format | 1.0000" in text
    assert "Drop: proxy" in text


@pytest.mark.parametrize(
    ("records", "y", "kwargs", "message"),
    [
        (pd.DataFrame({"a": [1]}), pd.Series([0]), {}, "records has 1 row"),
        (pd.DataFrame({"a": [1, 2]}), pd.Series([0]), {}, "y has 1 rows but"),
        (
            pd.DataFrame({"a": [1, 2]}),
            pd.Series([0, np.nan]),
            {},
            r"y holds 1 missing value\(s\)",
        ),
        (
            pd.DataFrame({"a": [1, 2]}),
            pd.Series([0, 1]),
            {"formats": pd.DataFrame({"f": ["x"]})},
            "formats has 1 rows but records has 2",
        ),
        (
            pd.DataFrame({"a": [1, 2]}),
            pd.Series([0, 1]),
            {"threshold": 1.5},
            r"threshold must lie in \(0, 1\]; got 1.5",
        ),
        ([[1, 2]], pd.Series([0, 1]), {}, "records must be a DataFrame; got list"),
    ],
)
def test_audit_leakage_rejects_bad_inputs(records, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        audit_leakage(records, y, **kwargs)


def test_audit_leakage_flags_garage_door_sphone_signal_format():
    # Real file: normal rows write 'true  '/'false  ', attack rows write 0/1.
    # load_dataset raises FileNotFoundError when the data is missing: a failure.
    loaded = load_dataset("garage_door")
    columns = input_columns(get_spec("garage_door"))

    report = audit_leakage(
        loaded.records[columns], loaded.records["label"], loaded.formats
    )

    flagged = {(f["column"], f["source"]): f for f in report.findings}
    assert ("sphone_signal", "format") in flagged
    assert flagged[("sphone_signal", "format")]["accuracy"] == 1.0
    # Once normalised the values no longer give the label away.
    assert report.drop_columns == []


def test_audit_leakage_flags_real_date_column_of_fridge():
    loaded = load_dataset("fridge")
    columns = input_columns(get_spec("fridge")) + ["date"]

    report = audit_leakage(loaded.records[columns], loaded.records["label"])

    assert report.drop_columns == ["date"]


def test_audit_leakage_is_fast_on_many_rows():
    rng = np.random.default_rng(0)
    n_rows = 200_000
    records = pd.DataFrame(
        {f"c{i}": rng.integers(0, 10**i, n_rows) for i in range(1, 7)}
        | {f"f{i}": rng.standard_normal(n_rows) for i in range(20)}
    )
    label = pd.Series(rng.integers(0, 2, n_rows))

    start = time.perf_counter()
    audit_leakage(records, label)

    assert time.perf_counter() - start < 5


def test_audit_leakage_finds_no_proxy_in_generated_windows_file(tmp_path):
    write_windows_dataset(tmp_path, "windows10", n_rows=1500)
    spec = get_spec("windows10")
    loaded = load_dataset("windows10", tmp_path)

    report = audit_leakage(loaded.records[input_columns(spec)], loaded.records["label"])

    assert report.findings == []
    assert all(c in loaded.records.columns for c in SIGNAL_COLUMNS)
    assert loaded.records["type"].value_counts()["mitm"] == 1
