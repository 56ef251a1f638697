"""The inference log: every scored record with its prediction, on disk.

Layout: ``<log dir>/<dataset>/<YYYY-MM-DD>/<time>-<pid>-<uuid>.<ext>``. A
service process appends each scored batch to its own open segment before it
answers: a journal (``.jsonl``) whose first line holds the Arrow schema and
each further line one batch's columns. The segment becomes a Parquet file of
the same name when it is full, the day ends or the process stops (written
under a hidden name, then ``os.replace``; a full segment is converted by a
background thread while a new one takes the writes). Each process writes only
its own files, so several workers never collide, and the reader takes a
segment only while no Parquet file of its name exists: no record is lost or
read twice. A line cut short by a crash is left out (the journal format and
its reader: ``ids.log_segments``). :func:`write_batch` writes one Parquet
file per batch (offline scoring). The log holds IP-derived fields, so
:func:`purge_log` removes old days.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import logging
import os
import shutil
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ids import settings
from ids.catalog import get_spec
from ids.log_segments import (
    ARROW_SEGMENT_SUFFIX,
    JOURNAL_FORMAT,
    TIME_COLUMN,
    read_journal,
    read_segment,
)

logger = logging.getLogger(__name__)

RETENTION_ENV = "IDS_LOG_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
SUFFIX = ".parquet"
SEGMENT_SUFFIX = ".jsonl"
SEGMENT_ROWS = 200_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def log_dir() -> Path:
    """Root of the inference log (``$IDS_INFERENCE_LOG`` or ``home/inference_log``)."""
    return settings.inference_log_dir()


def retention() -> timedelta:
    """How long log data is kept: ``$IDS_LOG_RETENTION_DAYS`` (default 30) days."""
    value = os.environ.get(RETENTION_ENV, str(DEFAULT_RETENTION_DAYS))
    try:
        days = float(value)
    except ValueError:
        raise ValueError(
            f"{RETENTION_ENV} must be a number of days, got {value!r}; unset it "
            f"for the default of {DEFAULT_RETENTION_DAYS}"
        ) from None
    if days <= 0:
        raise ValueError(f"{RETENTION_ENV} must be positive, got {value!r}")
    return timedelta(days=days)


def write_batch(
    dataset: str,
    columns: dict[str, object],
    *,
    scored_at: datetime | None = None,
    root: Path | None = None,
) -> Path:
    """Write one scored batch as a new Parquet file; returns its path.

    Args:
        dataset: Catalog name; the batch goes under its folder.
        columns: Column name to equal-length values (arrays, lists): the records'
            normalised input fields and the prediction columns.
        scored_at: When the batch was scored (UTC); defaults to now.
        root: Log folder; defaults to :func:`log_dir`.
    """
    get_spec(dataset)
    scored_at = _utc(scored_at) if scored_at else datetime.now(UTC)
    table = _table(columns, scored_at)
    final = _new_path(root, dataset, scored_at, SUFFIX)
    _write_parquet(table, final)
    return final


class LogWriter:
    """Appends scored batches to this process's segments; thread-safe.

    Args:
        root: Log folder; defaults to :func:`log_dir` at each write.
        segment_rows: Rows after which a segment is turned into Parquet.
    """

    def __init__(self, root: Path | None = None, segment_rows: int = SEGMENT_ROWS):
        self.root = root
        self.segment_rows = segment_rows
        self._lock = threading.Lock()
        self._segments: dict[str, _Segment] = {}
        self._finishing: list[threading.Thread] = []
        self._pid = os.getpid()
        atexit.register(self.close)

    def write(
        self,
        dataset: str,
        columns: dict[str, object],
        scored_at: datetime | None = None,
    ) -> Path:
        """Append one batch; it is in the file when this returns.

        Values are arrays or lists of equal length; a batch whose columns or
        value types differ from the open segment's starts a new segment.
        """
        get_spec(dataset)
        scored_at = _utc(scored_at) if scored_at else datetime.now(UTC)
        day = scored_at.strftime("%Y-%m-%d")
        shape = _signature(columns)
        with self._lock:
            if os.getpid() != self._pid:  # forked: the parent's segments are not ours
                self._segments, self._finishing = {}, []
                self._pid = os.getpid()
            segment = self._segments.get(dataset)
            if segment is not None and (segment.day != day or segment.shape != shape):
                self._finish_later(self._segments.pop(dataset))
                segment = None
            if segment is None:
                path = _new_path(self.root, dataset, scored_at, SEGMENT_SUFFIX)
                schema = _table(columns, scored_at).schema
                segment = _Segment(path, day, shape, schema)
                self._segments[dataset] = segment
            try:
                segment.append(columns, scored_at)
            except OSError:
                # The batch is not logged (the caller answers an error); later
                # batches go to a new segment.
                self._finish_later(self._segments.pop(dataset))
                raise
            if segment.rows >= self.segment_rows:
                self._finish_later(self._segments.pop(dataset))
        return segment.path

    def _finish_later(self, segment: _Segment) -> None:
        # Turning 200,000 rows into Parquet takes seconds: not inside a request.
        segment.close()
        thread = threading.Thread(
            target=segment.finish, name="inference-log-finish", daemon=False
        )
        thread.start()
        self._finishing = [t for t in self._finishing if t.is_alive()] + [thread]

    def close(self) -> None:
        """Turn every open segment into Parquet and wait for those under way."""
        with self._lock:
            if os.getpid() != self._pid:
                return
            for segment in self._segments.values():
                segment.close()
                segment.finish()
            self._segments = {}
            finishing, self._finishing = self._finishing, []
        for thread in finishing:
            thread.join()


def _signature(columns: dict[str, object]) -> tuple:
    """Column names and value types: what a segment's schema was inferred from.

    Arrays of numbers give their dtype; lists and object arrays the set of
    their values' types, so an all-None column, or ints then floats, start a
    new segment rather than break the one whose schema was inferred before.
    """
    return tuple(
        (name, values.dtype if _typed_array(values) else frozenset(map(type, values)))
        for name, values in columns.items()
    )


def _typed_array(values) -> bool:
    return type(values) is np.ndarray and values.dtype != object


class _Segment:
    """One journal: a schema line, then a line of columns per batch."""

    def __init__(self, path: Path, day: str, shape: tuple, schema: pa.Schema):
        self.path, self.day, self.shape, self.rows = path, day, shape, 0
        self._finish_lock = threading.Lock()
        self._finished = False
        # Unbuffered: a write that fails leaves nothing behind to be written
        # later by close (the caller answered an error; a retry must not be
        # logged twice).
        self._file = open(path, "ab", buffering=0)  # open for the segment's life
        self._size = 0
        header = base64.b64encode(schema.serialize().to_pybytes()).decode()
        self._write(orjson.dumps({"format": JOURNAL_FORMAT, "schema": header}))

    def append(self, columns: dict[str, object], scored_at: datetime) -> None:
        stamp = (scored_at - _EPOCH) // timedelta(microseconds=1)
        self._write(
            orjson.dumps(
                {"scored_at": stamp, "columns": columns},
                option=orjson.OPT_SERIALIZE_NUMPY,
                default=_plain,
            )
        )
        self.rows += _rows(columns)

    def _write(self, line: bytes) -> None:
        # The whole line goes to the kernel before this returns: a reader or a
        # crash sees the batch whole or not at all (an unfinished line is
        # skipped). On an error the file is cut back to its last whole line.
        view = memoryview(line + b"\n")
        try:
            while view:
                view = view[self._file.write(view) :]
        except OSError:
            with contextlib.suppress(OSError):
                self._file.truncate(self._size)
            raise
        self._size += len(line) + 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()

    def finish(self) -> None:
        """Turn the journal into Parquet once; a second call does nothing."""
        with self._finish_lock:
            if self._finished:
                return
            self._finished = True
        table = read_journal(self.path)
        if table is not None and table.num_rows:
            _write_parquet(table, self.path.with_suffix(SUFFIX))
        # Only now: until the Parquet file exists the segment is the record.
        self.path.unlink(missing_ok=True)


def _plain(value):
    # What orjson does not write itself: object and non-contiguous arrays.
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"inference log cannot store a {type(value).__name__}")


def _rows(columns: dict[str, object]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _table(columns: dict[str, object], scored_at: datetime) -> pa.Table:
    table = pa.table(columns)
    stamp = pa.array([scored_at] * table.num_rows, type=pa.timestamp("us", tz="UTC"))
    return table.append_column(TIME_COLUMN, stamp)


def _new_path(root, dataset: str, scored_at: datetime, suffix: str) -> Path:
    folder = (root or log_dir()) / dataset / scored_at.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{scored_at:%H%M%S%f}-{os.getpid()}-{uuid.uuid4().hex}{suffix}"


def _write_parquet(table: pa.Table, final: Path) -> None:
    staging = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, staging)
        os.replace(staging, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise


def log_files(
    dataset: str,
    since: datetime | None = None,
    until: datetime | None = None,
    root: Path | None = None,
) -> list[Path]:
    """Finished log files of ``dataset`` whose day overlaps ``[since, until)``."""
    get_spec(dataset)
    base = (root or log_dir()) / dataset
    if not base.is_dir():
        return []
    first = _utc(since).date() if since else date.min
    last = _utc(until).date() if until else date.max
    files = []
    for day_dir in sorted(base.iterdir()):
        day = _folder_day(day_dir)
        if day is None or not first <= day <= last:
            continue
        # Segments first: one turned into Parquet meanwhile is then found as
        # Parquet, never missed.
        segments = sorted(
            p
            for suffix in (SEGMENT_SUFFIX, ARROW_SEGMENT_SUFFIX)
            for p in day_dir.glob(f"[!.]*{suffix}")
        )
        finished = sorted(day_dir.glob(f"[!.]*{SUFFIX}"))
        names = {p.stem for p in finished}
        open_segments = [p for p in segments if p.stem not in names]
        files.extend(finished + open_segments)
    return files


def read_log(
    dataset: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    root: Path | None = None,
) -> pd.DataFrame:
    """Logged records of ``dataset`` scored in ``[since, until)``, oldest first.

    Returns the records' input fields (the champion's reference columns), the
    prediction columns and ``scored_at``; an empty frame if nothing was logged.
    """
    files = log_files(dataset, since, until, root)
    if not files:
        return pd.DataFrame()
    # Parquet files are read through their scored_at statistics: the files of
    # the day before the hour asked for are skipped, not read and dropped.
    window = [(TIME_COLUMN, ">=", _utc(since))] if since is not None else []
    window += [(TIME_COLUMN, "<", _utc(until))] if until is not None else []
    tables = [_read_file(path, window or None) for path in files]
    frames = [t.to_pandas() for t in tables if t is not None and t.num_rows]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    if since is not None:
        frame = frame[frame[TIME_COLUMN] >= pd.Timestamp(_utc(since))]
    if until is not None:
        frame = frame[frame[TIME_COLUMN] < pd.Timestamp(_utc(until))]
    return frame.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)


def count_logged(dataset: str, *, root: Path | None = None) -> int:
    """How many records of ``dataset`` the log holds (Parquet footers, segments)."""
    total = 0
    for path in log_files(dataset, root=root):
        if path.suffix == SUFFIX:
            total += pq.ParquetFile(path).metadata.num_rows
        else:
            table = _read_file(path)
            total += table.num_rows if table is not None else 0
    return total


def _read_file(path: Path, window: list | None = None) -> pa.Table | None:
    if path.suffix == SUFFIX:
        try:
            return pq.read_table(path, filters=window)
        except FileNotFoundError:
            return None
    table = read_segment(path)
    if table is None and path.with_suffix(SUFFIX).is_file():
        # The segment was turned into Parquet while the day was being listed.
        return pq.read_table(path.with_suffix(SUFFIX), filters=window)
    return table


def purge_log(
    older_than: timedelta | None = None,
    *,
    now: datetime | None = None,
    root: Path | None = None,
) -> list[Path]:
    """Delete the day folders older than the retention period; returns them.

    A day is removed once all of it is older than ``older_than`` (default
    :func:`retention`), so nothing younger than the period is ever deleted.
    """
    older_than = older_than if older_than is not None else retention()
    if older_than <= timedelta(0):
        raise ValueError(f"older_than must be positive, got {older_than!r}")
    cutoff = (_utc(now) if now else datetime.now(UTC)) - older_than
    base = root or log_dir()
    if not base.is_dir():
        return []

    removed = []
    for dataset_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for day_dir in sorted(dataset_dir.iterdir()):
            day = _folder_day(day_dir)
            # The whole day ends at the next midnight.
            if (
                day is None
                or datetime(*day.timetuple()[:3], tzinfo=UTC) + timedelta(days=1)
                > cutoff
            ):
                continue
            shutil.rmtree(day_dir)
            removed.append(day_dir)
    logger.info(
        "inference log: removed %d day folder(s) older than %s", len(removed), cutoff
    )
    return removed


def _folder_day(path: Path) -> date | None:
    if not path.is_dir():
        return None
    try:
        return date.fromisoformat(path.name)
    except ValueError:
        return None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
