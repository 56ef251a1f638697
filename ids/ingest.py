"""Newly labeled rows: the CSV files dropped into the incoming folder of a dataset."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from ids import settings
from ids.catalog import TARGET_COLUMNS, DatasetSpec, get_spec
from ids.data import (
    RecordError,
    input_columns,
    normalize_records,
    normalize_targets,
    read_raw,
)

logger = logging.getLogger(__name__)


class IncomingError(ValueError):
    """An incoming file cannot be read as labeled records of its dataset."""


def incoming_files(dataset: str, folder: str | os.PathLike | None = None) -> list[Path]:
    """The CSV files waiting in ``<incoming>/<dataset>/``, in name order."""
    spec = get_spec(dataset)
    root = Path(folder) if folder else settings.incoming_dir()
    names = spec.members or (spec.name,)
    return sorted(p for name in names for p in (root / name).glob("*.csv"))


def load_incoming(
    dataset: str, incoming_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Typed records (with ``label`` and ``type``) of every incoming file of a dataset.

    Each file holds the dataset's own columns plus ``label`` and ``type``, as the
    released file does. The result has the columns of
    ``load_dataset(dataset).records``, so it can be appended to them. For
    ``telemetry_combined`` the incoming files of its member devices are merged.

    Args:
        dataset: Catalog name.
        incoming_dir: Folder holding one sub-folder per dataset; defaults to
            ``ids.settings.incoming_dir()``.

    Raises:
        IncomingError: A file is empty, of another schema, or holds a value or
            label its column does not admit; the message names the file.
    """
    spec = get_spec(dataset)
    root = Path(incoming_dir) if incoming_dir else settings.incoming_dir()

    if spec.members:
        parts = [_as_combined(load_incoming(m, root), m, spec) for m in spec.members]
        parts = [p for p in parts if len(p)]
        return pd.concat(parts, ignore_index=True) if parts else _empty(spec)
    paths = incoming_files(dataset, root)
    if not paths:
        return _empty(spec)
    frames = [_read_incoming(path, spec) for path in paths]
    records = pd.concat(frames, ignore_index=True)
    logger.info(
        "%s: %d newly labeled rows from %d incoming file(s) in %s, classes %s",
        dataset,
        len(records),
        len(paths),
        root / dataset,
        records["type"].value_counts().to_dict(),
    )
    return records


def _read_incoming(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    hint = f"fix {path.name} or move it out of {path.parent}"
    try:
        raw, _ = read_raw(path, spec)
        if raw.empty:
            raise RecordError(f"{path.name} has a header but no rows")
        targets = normalize_targets(raw, path.name)
        typed = normalize_records(raw, spec)
    except RecordError as exc:
        raise IncomingError(f"incoming file {str(path)!r}: {exc}; {hint}") from exc
    disagree = (targets["label"] == 0) != (targets["type"] == "normal")
    if disagree.any():
        rows = [int(i) + 2 for i in raw.index[disagree.to_numpy()][:5]]
        raise IncomingError(
            f"incoming file {str(path)!r}: label and type disagree on line(s) {rows} "
            f"(label 0 must go with type 'normal'); {hint}"
        )
    kept = {
        c: raw[c].astype(str).str.strip()
        for c in spec.leakage_columns
        if c in raw.columns
    }
    return pd.concat([pd.DataFrame(kept, index=raw.index), typed, targets], axis=1)


def _as_combined(records: pd.DataFrame, device: str, spec: DatasetSpec) -> pd.DataFrame:
    """A device's typed records in the merged telemetry layout."""
    if not len(records):
        return records
    raw_like = records.drop(columns=list(TARGET_COLUMNS))
    raw_like["device"] = device
    typed = normalize_records(raw_like, spec)
    for column in spec.leakage_columns:
        if column in records.columns:
            typed[column] = records[column].to_numpy()
    typed[list(TARGET_COLUMNS)] = records[list(TARGET_COLUMNS)].to_numpy()
    typed["label"] = typed["label"].astype(int)
    return typed


def _empty(spec: DatasetSpec) -> pd.DataFrame:
    columns = [*input_columns(spec), *TARGET_COLUMNS]
    return pd.DataFrame(columns=columns)
