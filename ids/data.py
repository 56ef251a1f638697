"""Reading ToN-IoT files and normalising raw records into typed frames."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ids.catalog import (
    ABSENT_PREFIX,
    BOOLEAN,
    CATEGORICAL,
    CLASSES,
    NUMERIC,
    NUMERIC_DASH,
    TARGET_COLUMNS,
    DatasetSpec,
    dataset_path,
    get_spec,
    resolve_data_dir,
)

logger = logging.getLogger(__name__)

_TRUE = {"true", "1", "1.0", "t", "yes"}
_FALSE = {"false", "0", "0.0", "f", "no"}
NOT_APPLICABLE = "-"


class RecordError(ValueError):
    """Raised when records do not fit their dataset's schema."""


@dataclass
class LoadedDataset:
    """A dataset read from disk: normalised records plus where they came from."""

    name: str
    records: pd.DataFrame
    release: str
    rows_read: int
    rows_dropped: dict[str, int] = field(default_factory=dict)
    fingerprint: dict = field(default_factory=dict)
    # Hash of each raw row (all columns, padding kept): the dedup key.
    raw_hash: np.ndarray | None = None
    # Formatting signature of each raw text value (padding, case, digits), for the
    # leakage audit: a format that alone predicts the label is a proxy.
    formats: pd.DataFrame | None = None


def absent_column(column: str) -> str:
    """Name of the flag that marks ``column`` absent."""
    return f"{ABSENT_PREFIX}{column}"


def input_columns(spec: DatasetSpec) -> list[str]:
    """Columns of a normalised frame that feed the model, flags included."""
    columns = list(spec.feature_columns)
    flags = [absent_column(c) for c in columns if _has_absent_flag(spec, c)]
    return columns + flags


def _has_absent_flag(spec: DatasetSpec, column: str) -> bool:
    kind = spec.columns[column]
    if kind == NUMERIC_DASH:
        return True
    # In the merged telemetry set every device column can be absent.
    return bool(spec.members) and column != "device" and kind != CATEGORICAL


def file_fingerprint(path: Path) -> str:
    """md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_raw(path: str | os.PathLike, spec: DatasetSpec) -> tuple[pd.DataFrame, str]:
    """Read one file as strings, checking its header and row shapes.

    Returns:
        The raw frame (all strings, padding kept) and the release it belongs to.

    Raises:
        FileNotFoundError: The file is missing.
        RecordError: The file is empty, of another schema, or has a short row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{spec.name}: file {str(path)!r} not found; expected {spec.relpath} "
            "inside the data folder"
        )
    if path.stat().st_size == 0:
        raise RecordError(
            f"{path.name} is empty; expected a header with {_schema(spec)}"
        )
    try:
        # utf-8-sig drops the byte-order mark; the C parser copes with CRLF.
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            skipinitialspace=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise RecordError(
            f"{path.name} is empty; expected a header with {_schema(spec)}"
        ) from exc
    except pd.errors.ParserError as exc:
        raise RecordError(f"{path.name} could not be parsed: {exc}") from exc
    frame.columns = [c.strip("\r") for c in frame.columns]
    _check_header(frame, spec, path.name)
    if frame.empty:
        raise RecordError(
            f"{path.name} has a header but no rows; expected at least one record "
            f"of {_schema(spec)} below the header"
        )
    _check_short_rows(frame, path.name)
    release = spec.releases.get("ts" in frame.columns, "unknown")
    return frame, release


def _schema(spec: DatasetSpec) -> str:
    return f"the {len(spec.required_columns)}-column {spec.name} schema"


def _check_header(frame: pd.DataFrame, spec: DatasetSpec, where: str) -> None:
    missing = [c for c in spec.required_columns if c not in frame.columns]
    if missing:
        raise RecordError(
            f"column(s) {missing} missing from {where}; expected {_schema(spec)} "
            f"({', '.join(spec.required_columns)}); found {list(frame.columns)}"
        )


def _check_short_rows(frame: pd.DataFrame, where: str) -> None:
    # pandas pads a short (truncated) row with empty strings / NaN at the end.
    last = frame.columns[-1]
    short = frame.index[frame[last].isna() | (frame[last] == "")]
    if len(short):
        line = int(short[0]) + 2  # 1-based, after the header
        raise RecordError(
            f"{where}: line {line} is truncated or short: column {last!r} is empty "
            f"({len(short)} such row(s)); expected a value in every column"
        )


def normalize_records(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Turn raw records (strings as in the files, or typed values) into a typed frame.

    Strings are stripped; true/false and 0/1 become 1.0/0.0; numbers stored as
    text become floats; '-' stays a level of a categorical column and becomes
    NaN plus a 1 in the ``absent__`` flag of a numeric one. In the merged
    telemetry set, the columns a device lacks are 0 with their flag set.

    Raises:
        RecordError: A required column is missing or a value cannot be read as its
            column's kind; the message names the column and the first bad rows.
    """
    raw = raw.reset_index(drop=True)
    if spec.members:
        return _normalize_combined(raw, spec)
    missing = [c for c in spec.feature_columns if c not in raw.columns]
    if missing:
        raise RecordError(
            f"{spec.name}: record field(s) {missing} missing; expected "
            f"{spec.feature_columns}"
        )
    out = {}
    for column in spec.feature_columns:
        kind = spec.columns[column]
        values, absent = _convert(raw[column], kind, spec.name, column)
        out[column] = values
        if _has_absent_flag(spec, column):
            out[absent_column(column)] = absent.astype(np.float64)
    return pd.DataFrame(out, index=raw.index)


def _normalize_combined(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    if "device" not in raw.columns:
        raise RecordError(
            "telemetry_combined: record field 'device' missing; expected one of "
            f"{list(spec.members)}"
        )
    devices = raw["device"].astype(str).str.strip()
    unknown = sorted(set(devices) - set(spec.members))
    if unknown:
        raise RecordError(
            f"telemetry_combined: unknown device value(s) {unknown[:5]}; expected "
            f"one of {list(spec.members)}"
        )
    parts = []
    for device in spec.members:
        mask = (devices == device).to_numpy()
        if not mask.any():
            continue
        typed = normalize_records(raw.loc[mask], get_spec(device))
        typed.index = raw.index[mask]
        parts.append(typed)
    merged = pd.concat(parts).reindex(raw.index)
    out = {"device": devices}
    for column in spec.feature_columns:
        if column == "device":
            continue
        kind = spec.columns[column]
        if column not in merged.columns:
            merged[column] = np.nan
        present = merged[column].notna() & _belongs(devices, column, spec)
        if kind == CATEGORICAL:
            out[column] = merged[column].where(present, NOT_APPLICABLE)
        else:
            out[column] = merged[column].where(present, 0.0).astype(np.float64)
            out[absent_column(column)] = (~present).astype(np.float64)
    return pd.DataFrame(out, index=raw.index)


def _belongs(devices: pd.Series, column: str, spec: DatasetSpec) -> pd.Series:
    owners = [m for m in spec.members if column in get_spec(m).feature_columns]
    return devices.isin(owners)


def _convert(
    values: pd.Series, kind: str, dataset: str, column: str
) -> tuple[pd.Series, pd.Series]:
    """Convert one column; returns the values and an 'absent' mask."""
    if kind == CATEGORICAL:
        text = values.astype("string").str.strip().fillna(NOT_APPLICABLE)
        return text.astype(object), pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    absent = (text == NOT_APPLICABLE).fillna(False).astype(bool)
    empty = text.isna() | (text == "") | absent
    if kind == BOOLEAN:
        lower = text.str.lower()
        parsed = pd.Series(np.nan, index=values.index, dtype=np.float64)
        parsed[lower.isin(_TRUE).fillna(False).to_numpy()] = 1.0
        parsed[lower.isin(_FALSE).fillna(False).to_numpy()] = 0.0
        bad = parsed.isna() & ~empty
        _raise_bad(values, bad, dataset, column, "true/false or 0/1")
        return parsed, absent
    parsed = pd.to_numeric(text.where(~empty), errors="coerce").astype(np.float64)
    bad = parsed.isna() & ~empty
    _raise_bad(values, bad, dataset, column, "a number")
    if kind == NUMERIC and absent.any():
        # '-' in a plain numeric column still means "not applicable".
        logger.debug("%s.%s: %d '-' values", dataset, column, int(absent.sum()))
    return parsed, absent


def _raise_bad(
    values: pd.Series, bad: pd.Series, dataset: str, column: str, expected: str
) -> None:
    if not bad.any():
        return
    rows = list(values.index[bad.to_numpy()][:5])
    samples = [values.iloc[i] for i in np.flatnonzero(bad.to_numpy())[:5]]
    raise RecordError(
        f"{dataset}: column {column!r} expects {expected}; row(s) {rows} hold "
        f"{samples!r} ({int(bad.sum())} bad value(s) in all)"
    )


def normalize_targets(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Typed ``label`` (0/1) and ``type`` (a vocabulary class) columns."""
    label = pd.to_numeric(raw["label"].astype(str).str.strip(), errors="coerce")
    kind = raw["type"].astype(str).str.strip().str.lower()
    bad_label = ~label.isin([0, 1])
    if bad_label.any():
        rows = list(raw.index[bad_label.to_numpy()][:5])
        raise RecordError(f"{where}: column 'label' expects 0 or 1; bad at rows {rows}")
    bad_type = ~kind.isin(CLASSES)
    if bad_type.any():
        rows = list(raw.index[bad_type.to_numpy()][:5])
        values = sorted(set(kind[bad_type]))[:5]
        raise RecordError(
            f"{where}: column 'type' holds {values} at rows {rows}; expected one "
            f"of {list(CLASSES)}"
        )
    return pd.DataFrame({"label": label.astype(int), "type": kind}, index=raw.index)


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, max_rows: int | None = None
) -> LoadedDataset:
    """Read a dataset of the catalog into normalised records with targets.

    Time and testbed columns are kept here (the feature filter drops them), so
    that dedup on raw rows and time-aware work can still see them.

    Args:
        name: Catalog name.
        data_dir: Data folder; defaults to ``$IDS_DATA_DIR`` or the shared folder.
        max_rows: Keep a stratified sample of at most this many rows (for tests
            and quick runs); ``None`` keeps every row.
    """
    spec = get_spec(name)
    root = resolve_data_dir(data_dir)
    if spec.members:
        return _load_combined(spec, root, max_rows)
    path = dataset_path(spec, root)
    raw, release = read_raw(path, spec)
    rows_read = len(raw)
    targets = normalize_targets(raw, path.name)
    records = _normalize_all(raw, spec)
    frame = pd.concat([records, targets], axis=1)
    frame["__raw_hash"] = pd.util.hash_pandas_object(raw, index=False).to_numpy()
    frame = pd.concat([frame, format_signatures(raw, spec)], axis=1)
    frame, dropped = _drop_inconsistent(frame)
    if max_rows is not None and len(frame) > max_rows:
        frame = _stratified_head(frame, max_rows)
        dropped["max_rows sample"] = rows_read - sum(dropped.values()) - len(frame)
    frame = frame.reset_index(drop=True)
    fmt_cols = [c for c in frame.columns if c.startswith(_FORMAT_PREFIX)]
    formats = frame[fmt_cols].rename(columns=lambda c: c[len(_FORMAT_PREFIX) :])
    raw_hash = frame["__raw_hash"].to_numpy()
    frame = frame.drop(columns=fmt_cols + ["__raw_hash"])
    fingerprint = {
        "file": spec.relpath,
        "md5": file_fingerprint(path),
        "release": release,
        "rows": rows_read,
    }
    logger.info(
        "%s: read %s release from %s, %d rows, dropped %s",
        name,
        release,
        path,
        rows_read,
        dropped or "none",
    )
    return LoadedDataset(
        name, frame, release, rows_read, dropped, fingerprint, raw_hash, formats
    )


_FORMAT_PREFIX = "__format__"


def format_signatures(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """How each raw text value is written: padding, case and digits, not content."""
    out = {}
    for column in spec.feature_columns:
        if spec.columns[column] not in (CATEGORICAL, BOOLEAN) or column not in raw:
            continue
        # Signatures of the distinct values only: string methods cost ~1 us a
        # row, and a column rarely holds more than a few thousand values.
        codes, uniques = pd.factorize(raw[column].astype(str))
        text = pd.Series(uniques, dtype=object)
        lead = text.str.len() - text.str.lstrip().str.len()
        trail = text.str.len() - text.str.rstrip().str.len()
        core = text.str.strip()
        case = np.select(
            [core.str.isdigit(), core.str.isupper(), core.str.islower()],
            ["digits", "upper", "lower"],
            "mixed",
        )
        signature = (lead.astype(str) + "|" + trail.astype(str) + "|" + case).to_numpy()
        out[f"{_FORMAT_PREFIX}{column}"] = signature[codes]
    return pd.DataFrame(out, index=raw.index)


def _normalize_all(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Normalise features and keep the leakage columns as stripped strings."""
    typed = normalize_records(raw, spec)
    kept = {}
    for column in spec.leakage_columns:
        if column in raw.columns:
            kept[column] = raw[column].astype(str).str.strip()
    return pd.concat([pd.DataFrame(kept, index=raw.index), typed], axis=1)


def _drop_inconsistent(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    bad = (frame["label"] == 0) != (frame["type"] == "normal")
    dropped = {"label disagrees with type": int(bad.sum())} if bad.any() else {}
    return frame.loc[~bad], dropped


def _stratified_head(frame: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    share = max_rows / len(frame)
    sample = frame.groupby("type", group_keys=False).sample(
        frac=share, random_state=seed
    )
    return sample.sort_index()


def _load_combined(
    spec: DatasetSpec, root: Path, max_rows: int | None
) -> LoadedDataset:
    parts, fingerprints, rows_read, dropped = [], [], 0, {}
    hashes, formats = [], []
    per_device = None if max_rows is None else max(1, max_rows // len(spec.members))
    for device in spec.members:
        loaded = load_dataset(device, root, per_device)
        raw_like = loaded.records.drop(columns=list(TARGET_COLUMNS))
        raw_like["device"] = device
        typed = normalize_records(raw_like, spec)
        for column in spec.leakage_columns:
            if column in loaded.records.columns:
                typed[column] = loaded.records[column].to_numpy()
        typed[list(TARGET_COLUMNS)] = loaded.records[list(TARGET_COLUMNS)].to_numpy()
        parts.append(typed)
        hashes.append(loaded.raw_hash)
        formats.append(loaded.formats.add_prefix(f"{device}."))
        fingerprints.append(loaded.fingerprint)
        rows_read += loaded.rows_read
        for reason, count in loaded.rows_dropped.items():
            dropped[f"{device}: {reason}"] = count
    frame = pd.concat(parts, ignore_index=True)
    frame["label"] = frame["label"].astype(int)
    fingerprint = {
        "file": spec.relpath,
        "md5": hashlib.md5(
            "".join(f["md5"] for f in fingerprints).encode()
        ).hexdigest(),
        "release": "merged",
        "rows": rows_read,
        "members": fingerprints,
    }
    logger.info("telemetry_combined: %d rows from %d devices", len(frame), len(parts))
    # Rows of two devices never count as duplicates of each other.
    raw_hash = np.concatenate([h + np.uint64(i) for i, h in enumerate(hashes)]).astype(
        np.uint64
    )
    format_frame = pd.concat(formats, ignore_index=True).fillna("n/a")
    return LoadedDataset(
        spec.name,
        frame,
        "merged",
        rows_read,
        dropped,
        fingerprint,
        raw_hash,
        format_frame,
    )


def split_targets(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Separate the records from their ``label``/``type`` columns."""
    present = [c for c in TARGET_COLUMNS if c in frame.columns]
    return frame.drop(columns=present), frame[present]


__all__ = [
    "BOOLEAN",
    "NUMERIC",
    "LoadedDataset",
    "RecordError",
    "absent_column",
    "input_columns",
    "load_dataset",
    "normalize_records",
    "read_raw",
    "split_targets",
]
