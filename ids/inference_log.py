"""The inference log: every scored record with its prediction, on disk.

Layout: ``<log dir>/<dataset>/<YYYY-MM-DD>/<time>-<pid>-<uuid>.<ext>``. A
service process appends each scored batch to its own open segment, an Arrow
IPC stream (``.arrows``), before it answers; the segment becomes a Parquet file
of the same name when it is full, the day ends or the process stops (written
under a hidden name, then ``os.replace``). Each process writes only its own
files, so several workers never collide, and the reader takes a segment only
while no Parquet file of its name exists: no record is lost or read twice.
:func:`write_batch` writes one Parquet file per batch (offline scoring). The
log holds IP-derived fields, so :func:`purge_log` removes old days.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ids import settings
from ids.catalog import get_spec

logger = logging.getLogger(__name__)

RETENTION_ENV = "IDS_LOG_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
TIME_COLUMN = "scored_at"
SUFFIX = ".parquet"
SEGMENT_SUFFIX = ".arrows"
SEGMENT_ROWS = 200_000


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
    scored_at = scored_at or datetime.now(UTC)
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
        self._pid = os.getpid()
        atexit.register(self.close)

    def write(
        self,
        dataset: str,
        columns: dict[str, object],
        scored_at: datetime | None = None,
    ) -> Path:
        """Append one batch; it is in the file when this returns."""
        get_spec(dataset)
        scored_at = scored_at or datetime.now(UTC)
        table = _table(columns, scored_at)
        day = scored_at.strftime("%Y-%m-%d")
        with self._lock:
            if os.getpid() != self._pid:  # forked: the parent's segments are not ours
                self._segments, self._pid = {}, os.getpid()
            segment = self._segments.get(dataset)
            if segment is not None and (
                segment.day != day or not segment.schema.equals(table.schema)
            ):
                segment.finish()
                segment = None
            if segment is None:
                path = _new_path(self.root, dataset, scored_at, SEGMENT_SUFFIX)
                segment = _Segment(path, day, table.schema)
                self._segments[dataset] = segment
            segment.append(table)
            if segment.rows >= self.segment_rows:
                segment.finish()
                del self._segments[dataset]
        return segment.path

    def close(self) -> None:
        """Turn every open segment into Parquet."""
        with self._lock:
            if os.getpid() != self._pid:
                return
            for segment in self._segments.values():
                segment.finish()
            self._segments = {}


class _Segment:
    def __init__(self, path: Path, day: str, schema: pa.Schema):
        self.path, self.day, self.schema, self.rows = path, day, schema, 0
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)

    def append(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self._sink.flush()
        self.rows += table.num_rows

    def finish(self) -> None:
        self._writer.close()
        self._sink.close()
        table = _read_segment(self.path)
        if table is not None and table.num_rows:
            _write_parquet(table, self.path.with_suffix(SUFFIX))
        # Only now: until the Parquet file exists the segment is the record.
        self.path.unlink(missing_ok=True)


def _table(columns: dict[str, object], scored_at: datetime) -> pa.Table:
    table = pa.table(columns)
    stamp = pa.array([scored_at] * table.num_rows, type=pa.timestamp("us", tz="UTC"))
    return table.append_column(TIME_COLUMN, stamp)


def _new_path(root, dataset: str, scored_at: datetime, suffix: str) -> Path:
    folder = (root or log_dir()) / dataset / scored_at.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{scored_at:%H%M%S%f}-{os.getpid()}-{uuid.uuid4().hex}{suffix}"


def _write_parquet(table: pa.Table, final: Path) -> None:
    staging = final.with_name(f".{final.name}.tmp")
    try:
        pq.write_table(table, staging)
        os.replace(staging, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise


def _read_segment(path: Path) -> pa.Table | None:
    """The whole batches of a segment; a batch still being written is left out."""
    batches = []
    try:
        with pa.OSFile(str(path), "rb") as source:
            reader = pa.ipc.open_stream(source)
            schema = reader.schema
            with contextlib.suppress(pa.ArrowInvalid, OSError):
                for batch in reader:
                    batches.append(batch)
    except (pa.ArrowInvalid, OSError, FileNotFoundError):
        return None  # nothing whole yet, or turned into Parquet meanwhile
    return pa.Table.from_batches(batches, schema=schema)


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
        segments = sorted(day_dir.glob(f"[!.]*{SEGMENT_SUFFIX}"))
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
    tables = [_read_file(path) for path in files]
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


def _read_file(path: Path) -> pa.Table | None:
    if path.suffix == SUFFIX:
        try:
            return pq.read_table(path)
        except FileNotFoundError:
            return None
    table = _read_segment(path)
    if table is None and path.with_suffix(SUFFIX).is_file():
        # The segment was turned into Parquet while the day was being listed.
        return pq.read_table(path.with_suffix(SUFFIX))
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
