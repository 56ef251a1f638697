"""Tests of ids.inference_log: several writer processes, reading back, retention."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ids import inference_log
from ids.catalog import get_spec, resolve_data_dir
from ids.inference_log import LogWriter, count_logged, purge_log, read_log, write_batch
from ids.scoring_input import typed_columns

BATCHES_PER_WRITER = 25


def _real_columns(rows: int = 8) -> dict:
    spec = get_spec("network")
    raw = pd.read_csv(
        resolve_data_dir() / spec.relpath,
        dtype=str,
        keep_default_na=False,
        nrows=rows,
        encoding="utf-8-sig",
    )
    return typed_columns(raw.to_dict("records"), spec)


def _writer_process(root: str, name: str, finish: bool) -> None:
    writer = LogWriter(Path(root), segment_rows=48)
    columns = _real_columns()
    rows = len(columns["proto"])
    for batch in range(BATCHES_PER_WRITER):
        ids = [f"{name}-{batch}-{i}" for i in range(rows)]
        writer.write("network", {**columns, "request": ids})
    if finish:
        writer.close()
    else:
        os._exit(0)  # a killed worker: its last segment is never turned into Parquet


def test_log_writers_in_several_processes_lose_and_duplicate_nothing(tmp_path):
    context = multiprocessing.get_context("spawn")
    plan = [("a", True), ("b", True), ("c", False), ("d", False)]
    workers = [
        context.Process(target=_writer_process, args=(str(tmp_path), name, finish))
        for name, finish in plan
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0

    frame = read_log("network", root=tmp_path)
    expected = len(plan) * BATCHES_PER_WRITER * 8
    assert len(frame) == expected
    assert frame["request"].is_unique
    assert count_logged("network", root=tmp_path) == expected
    files = [p for p in (tmp_path / "network").rglob("[!.]*") if p.is_file()]
    # The killed writers left segments (and maybe a hidden, half-written
    # Parquet file of one being converted when they died; it is never read).
    assert {p.suffix for p in files} == {".parquet", ".jsonl"}


def test_log_reader_sees_open_segment_then_parquet(tmp_path):
    writer = LogWriter(tmp_path)
    columns = _real_columns(5)
    writer.write("network", columns)
    assert len(read_log("network", root=tmp_path)) == 5
    assert list(tmp_path.rglob("*.jsonl"))

    writer.close()

    assert not list(tmp_path.rglob("*.jsonl"))
    frame = read_log("network", root=tmp_path)
    assert len(frame) == 5
    assert frame["proto"].tolist() == columns["proto"]
    assert str(frame["scored_at"].dt.tz) == "UTC"


def test_log_reader_skips_batch_cut_short_by_crash(tmp_path):
    writer = LogWriter(tmp_path)
    columns = _real_columns(4)
    path = writer.write("network", columns)
    writer.write("network", columns)
    whole = path.read_bytes()
    # As if the process died in the middle of writing the second batch.
    path.write_bytes(whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 40])

    frame = read_log("network", root=tmp_path)

    assert len(frame) == 4
    assert frame["proto"].tolist() == columns["proto"]


def test_log_reader_filters_by_time(tmp_path):
    columns = _real_columns(3)
    old = datetime(2026, 1, 1, 12, tzinfo=UTC)
    write_batch("network", columns, scored_at=old, root=tmp_path)
    write_batch("network", columns, scored_at=old + timedelta(days=2), root=tmp_path)

    assert len(read_log("network", root=tmp_path)) == 6
    assert len(read_log("network", since=old + timedelta(days=1), root=tmp_path)) == 3
    assert len(read_log("network", until=old + timedelta(hours=1), root=tmp_path)) == 3
    assert read_log("fridge", root=tmp_path).empty


def test_log_reader_filters_hours_within_a_day(tmp_path):
    columns = _real_columns(3)
    start = datetime(2026, 5, 1, 8, tzinfo=UTC)
    for hour in range(5):
        batch = {**columns, "hour": [hour] * 3}
        write_batch(
            "network", batch, scored_at=start + timedelta(hours=hour), root=tmp_path
        )

    frame = read_log(
        "network",
        since=start + timedelta(hours=2),
        until=start + timedelta(hours=4),
        root=tmp_path,
    )

    assert frame["hour"].tolist() == [2, 2, 2, 3, 3, 3]


def test_purge_removes_only_days_past_retention(tmp_path):
    columns = _real_columns(2)
    now = datetime(2026, 3, 1, 9, tzinfo=UTC)
    for age in (45, 31, 29, 0):
        write_batch(
            "network", columns, scored_at=now - timedelta(days=age), root=tmp_path
        )

    removed = purge_log(timedelta(days=30), now=now, root=tmp_path)

    assert sorted(p.name for p in removed) == ["2026-01-15", "2026-01-29"]
    left = read_log("network", root=tmp_path)
    assert len(left) == 4
    assert left["scored_at"].min() >= pd.Timestamp(now - timedelta(days=30))


@pytest.mark.parametrize(
    ("value", "message"),
    [("soon", "must be a number of days, got 'soon'"), ("0", "must be positive")],
)
def test_retention_rejects_bad_setting(monkeypatch, value, message):
    monkeypatch.setenv(inference_log.RETENTION_ENV, value)
    with pytest.raises(ValueError, match=message):
        inference_log.retention()


def test_retention_reads_days_from_env(monkeypatch):
    monkeypatch.setenv(inference_log.RETENTION_ENV, "7")
    assert inference_log.retention() == timedelta(days=7)


def test_write_batch_rejects_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        write_batch("nope", {"x": [1.0]}, root=tmp_path)
