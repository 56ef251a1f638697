"""The inference log: every scored record with its prediction, as Parquet on disk.

Layout: ``<log dir>/<dataset>/<YYYY-MM-DD>/<time>-<pid>-<uuid>.parquet``, one
file per scored batch. A file is written under a hidden temporary name and
moved into place with ``os.replace``, so a reader sees whole files only and
several writer processes never collide: no record is lost or written twice.
The log holds IP-derived fields, so :func:`purge_log` removes old days.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
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
    table = pa.table(columns)
    stamp = pa.array([scored_at] * table.num_rows, type=pa.timestamp("us", tz="UTC"))
    table = table.append_column(TIME_COLUMN, stamp)

    folder = (root or log_dir()) / dataset / scored_at.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{scored_at:%H%M%S%f}-{os.getpid()}-{uuid.uuid4().hex}{SUFFIX}"
    final = folder / name
    staging = folder / f".{name}.tmp"
    try:
        # Uncompressed: a batch is small and the write sits on the request path.
        pq.write_table(table, staging, compression="none")
        os.replace(staging, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise
    return final


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
        files.extend(sorted(day_dir.glob(f"[!.]*{SUFFIX}")))
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
    frames = [pq.read_table(path).to_pandas() for path in files]
    frame = pd.concat(frames, ignore_index=True)
    if since is not None:
        frame = frame[frame[TIME_COLUMN] >= pd.Timestamp(_utc(since))]
    if until is not None:
        frame = frame[frame[TIME_COLUMN] < pd.Timestamp(_utc(until))]
    return frame.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)


def count_logged(dataset: str, *, root: Path | None = None) -> int:
    """How many records of ``dataset`` the log holds (reads file footers only)."""
    return sum(
        pq.ParquetFile(p).metadata.num_rows for p in log_files(dataset, root=root)
    )


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
