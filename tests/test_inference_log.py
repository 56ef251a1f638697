"""Tests of ids.inference_log: several writer processes, reading back, retention."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ids import inference_log, log_segments
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


def test_journal_read_by_arrow_equals_read_line_by_line(tmp_path):
    writer = LogWriter(tmp_path)
    columns = _real_columns(6)
    scored = {
        **columns,
        "is_attack": np.array([True, False, True, True, False, False]),
        "attack_probability": np.array([0.9, 0.1, np.nan, 1.0, 0.0, 0.25]),
        "attack_type": np.array(["ddos", "normal", "xss", "dos", "normal", "mitm"]),
        "multiclass_model": [None] * 6,
    }
    path = writer.write("network", scored)
    for _ in range(3):
        writer.write("network", scored, scored_at=datetime.now(UTC))
    _, rest = path.read_bytes().split(b"\n", 1)
    schema = log_segments.read_journal(path).schema

    by_arrow = log_segments.journal_table(rest, schema)
    by_line = log_segments.journal_table_by_line(rest, schema, path)

    assert by_arrow.num_rows == 24
    assert by_arrow.equals(by_line)
    assert by_arrow.column("attack_probability").null_count == 4  # NaN is null
    writer.close()


def test_journal_reader_skips_a_damaged_line_and_keeps_the_rest(tmp_path):
    writer = LogWriter(tmp_path)
    columns = _real_columns(3)
    path = writer.write("network", {**columns, "batch": [0] * 3})
    writer.write("network", {**columns, "batch": [1] * 3})
    writer.write("network", {**columns, "batch": [2] * 3})
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][:50] + b"#" + lines[2][51:]  # batch 1 is no longer JSON
    path.write_bytes(b"\n".join(lines))

    frame = read_log("network", root=tmp_path)

    assert frame["batch"].tolist() == [0] * 3 + [2] * 3
    writer._segments.clear()  # leave the damaged journal as it is


def test_log_writer_starts_new_segment_on_new_day_or_value_types(tmp_path):
    writer = LogWriter(tmp_path)
    columns = _real_columns(2)
    evening = datetime(2026, 5, 1, 23, 59, tzinfo=UTC)
    unscored = {**columns, "attack_type": np.array([None, None], dtype=object)}
    scored = {**columns, "attack_type": np.array(["ddos", "xss"], dtype=object)}
    counts = {**columns, "attack_type": [1, 2]}
    fractions = {**columns, "attack_type": [1, 2.5]}

    writer.write("network", unscored, scored_at=evening)
    writer.write("network", scored, scored_at=evening + timedelta(seconds=1))
    writer.write("network", scored, scored_at=evening + timedelta(minutes=2))
    writer.write("network", counts, scored_at=evening + timedelta(minutes=3))
    writer.write("network", fractions, scored_at=evening + timedelta(minutes=4))
    before_close = read_log("network", root=tmp_path)
    writer.close()
    frame = read_log("network", root=tmp_path)

    assert len(before_close) == len(frame) == 10
    assert frame["attack_type"].tolist()[:6] == [None, None] + ["ddos", "xss"] * 2
    assert frame["attack_type"].tolist()[-2:] == [1, 2.5]
    days = sorted(p.name for p in (tmp_path / "network").iterdir())
    assert days == ["2026-05-01", "2026-05-02"]


def _write_until_disk_full(root: str, limit: int) -> None:
    # The file size limit makes the kernel refuse writes (EFBIG), as a full
    # disk would; SIGXFSZ is ignored so that the write raises instead.
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    writer = LogWriter(Path(root))
    columns = _real_columns(4)
    accepted = []
    for batch in range(200):
        try:
            writer.write("network", {**columns, "batch": [batch] * 4})
        except OSError:
            break
        accepted.append(batch)
    else:
        raise AssertionError("the size limit never stopped a write")
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit * 8, resource.RLIM_INFINITY))
    writer.write("network", {**columns, "batch": [-1] * 4})  # space is back
    (Path(root) / "accepted.txt").write_text(",".join(map(str, accepted)))
    os._exit(0)  # killed: the segments stay journals


def test_log_writer_logs_nothing_of_a_batch_that_failed_to_write(tmp_path):
    context = multiprocessing.get_context("spawn")
    worker = context.Process(
        target=_write_until_disk_full, args=(str(tmp_path), 20_000)
    )
    worker.start()
    worker.join(timeout=120)
    assert worker.exitcode == 0

    accepted = [int(b) for b in (tmp_path / "accepted.txt").read_text().split(",")]
    frame = read_log("network", root=tmp_path)

    # Every batch that returned is there once, the failed one is not, and the
    # writer went on in a new segment once it could.
    assert sorted(frame["batch"].unique().tolist()) == [-1, *accepted]
    assert len(frame) == 4 * (len(accepted) + 1)


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
