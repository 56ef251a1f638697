"""Checks and types the raw records of a scoring request, field by field.

Stricter than the file loader (``ids.data.normalize_records``): a missing
field, a null, NaN or inf, or a value of the wrong type is a
:class:`ScoringError` that names the field and the records, answered as a 4xx.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import os

import numpy as np

from ids.catalog import BOOLEAN, CATALOG, CATEGORICAL, get_spec
from ids.data import _FALSE, _TRUE, absent_column, input_columns

MAX_RECORDS_ENV = "IDS_MAX_RECORDS"
DEFAULT_MAX_RECORDS = 10_000
_MISSING = object()
_NUMBER_TYPES = {int, float}


class ScoringError(ValueError):
    """A request that cannot be scored; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def max_records() -> int:
    """Most records one request may carry: ``$IDS_MAX_RECORDS`` (default 10,000)."""
    return int(os.environ.get(MAX_RECORDS_ENV, DEFAULT_MAX_RECORDS))


def check_request(dataset, records, limit: int | None = None):
    """The dataset's spec if ``dataset`` and ``records`` can be scored, else raise."""
    if not isinstance(dataset, str) or dataset not in CATALOG:
        raise ScoringError(
            f"field 'dataset': unknown dataset {dataset!r}; expected one of "
            f"{sorted(CATALOG)}"
        )
    if not isinstance(records, list):
        raise ScoringError(
            f"field 'records' must be a list of objects, got {type(records).__name__}"
        )
    if not records:
        raise ScoringError("field 'records' is empty; send at least one record")
    limit = limit or max_records()
    if len(records) > limit:
        raise ScoringError(
            f"field 'records' holds {len(records)} records, over the limit of "
            f"{limit}; split the request (limit: ${MAX_RECORDS_ENV})",
            status=413,
        )
    bad = [i for i, r in enumerate(records) if not isinstance(r, dict)][:5]
    if bad:
        raise ScoringError(f"records {bad} are not JSON objects; send field: value")
    return get_spec(dataset)


def typed_columns(records: list[dict], spec) -> dict[str, object]:
    """Normalise raw records column by column, as ``ids.data.normalize_records``.

    Numbers become float64 arrays ('-' gives NaN and a 1 in the ``absent__``
    flag), categorical values stripped strings. Stricter than the file loader:
    a missing field, a null, NaN or inf, or a value of the wrong type raises
    :class:`ScoringError` naming the field and the records.
    """
    plan = _column_plan(spec.name)
    getter = operator.itemgetter(*(column for column, _, _ in plan))
    try:
        # One C-level pass over the records, then a transpose; a record that
        # lacks a field falls back to the column-by-column pass below.
        by_column = list(zip(*map(getter, records), strict=True))
    except (KeyError, TypeError):
        by_column = [
            [r.get(column, _MISSING) for r in records] for column, _, _ in plan
        ]
    out: dict[str, object] = {}
    plain = []  # numbers without an absent flag: parsed together below
    for (column, kind, flag), values in zip(plan, by_column, strict=True):
        values = list(values)
        _check_present(values, column, spec.name)
        if kind == CATEGORICAL:
            out[column] = _categorical(values, column, spec.name)
            continue
        if kind != BOOLEAN and not flag:
            out[column] = None  # its place in the column order
            plain.append((column, values))
            continue
        parse = _boolean if kind == BOOLEAN else _numeric
        numbers, absent = parse(values, column, spec.name)
        out[column] = numbers
        if flag:
            out[flag] = absent.astype(np.float64)
    out.update(_numeric_block(plain, spec.name))
    return out


def _numeric_block(columns: list[tuple[str, list]], dataset: str) -> dict:
    """Number columns parsed by one array call when every value is a finite number.

    A single record has a dozen of them, and one call instead of a handful
    per column halves the cost of typing it. Anything else ('-', a NaN, a
    wrong type) goes column by column through :func:`_numeric`, which names it.
    """
    if not columns:
        return {}
    values = [v for _, v in columns]
    block = None
    if set(map(type, itertools.chain.from_iterable(values))) <= _NUMBER_TYPES | {str}:
        try:
            block = np.array(values, dtype=np.float64)
        except (ValueError, OverflowError):
            block = None
    if block is not None and np.isfinite(block).all():
        return {column: block[j] for j, (column, _) in enumerate(columns)}
    return {column: _numeric(v, column, dataset)[0] for column, v in columns}


@functools.cache
def _column_plan(dataset: str) -> tuple[tuple[str, str, str | None], ...]:
    """(column, kind, its absent flag or None) for each feature column."""
    spec = get_spec(dataset)
    inputs = set(input_columns(spec))
    return tuple(
        (c, spec.columns[c], absent_column(c) if absent_column(c) in inputs else None)
        for c in spec.feature_columns
    )


def _check_present(values: list, column: str, dataset: str) -> None:
    if _MISSING not in values and None not in values:
        return
    rows = [i for i, v in enumerate(values) if v is _MISSING or v is None]
    what = "lack" if values[rows[0]] is _MISSING else "have null for"
    raise ScoringError(
        f"field {column!r}: record(s) {rows[:5]} {what} it ({len(rows)} in all); "
        f"every {dataset} record needs it ('-' where not applicable)"
    )


def _raise_bad(values, rows, column, dataset, expected) -> None:
    samples = [values[i] for i in rows[:5]]
    raise ScoringError(
        f"field {column!r} expects {expected}; record(s) {rows[:5]} hold "
        f"{samples!r} ({len(rows)} bad in all, dataset {dataset})"
    )


def _categorical(values: list, column: str, dataset: str) -> list[str]:
    types = set(map(type, values))
    if types == {str}:
        return [v.strip() for v in values]
    bad = [i for i, v in enumerate(values) if isinstance(v, list | dict)]
    if bad:
        _raise_bad(values, bad, column, dataset, "a string")
    return [str(v).strip() for v in values]


def _numeric(values: list, column: str, dataset: str):
    types = set(map(type, values))
    absent = np.zeros(len(values), dtype=bool)
    numbers = None
    if types <= _NUMBER_TYPES | {str}:
        try:
            numbers = np.array(values, dtype=np.float64)
        except (ValueError, OverflowError):
            numbers = None
    if numbers is None:
        numbers, absent, bad = _numeric_slow(values)
        if bad:
            _raise_bad(values, bad, column, dataset, "a number (or '-')")
    finite = np.isfinite(numbers)
    if finite.all():
        return numbers, absent
    finite |= np.isnan(numbers) & _blank(values, absent)
    if not finite.all():
        rows = np.flatnonzero(~finite).tolist()
        _raise_bad(values, rows, column, dataset, "a finite number, not NaN or inf")
    return numbers, absent


def _blank(values: list, absent: np.ndarray) -> np.ndarray:
    # '' and '-' give NaN on purpose (the loader does the same); a NaN sent as a
    # value is an error.
    if not absent.any() and "" not in values:
        return absent
    empty = np.array([isinstance(v, str) and not v.strip() for v in values])
    return absent | empty


def _numeric_slow(values: list):
    numbers = np.full(len(values), np.nan)
    absent = np.zeros(len(values), dtype=bool)
    bad = []
    for i, value in enumerate(values):
        if type(value) in _NUMBER_TYPES:
            numbers[i] = value
        elif isinstance(value, str):
            text = value.strip()
            if text == "-":
                absent[i] = True
            elif text:
                try:
                    numbers[i] = float(text)
                except ValueError:
                    bad.append(i)
        else:
            bad.append(i)
    return numbers, absent, bad


def _boolean(values: list, column: str, dataset: str):
    numbers = np.full(len(values), np.nan)
    absent = np.zeros(len(values), dtype=bool)
    bad = []
    for i, value in enumerate(values):
        if isinstance(value, float) and not math.isfinite(value):
            bad.append(i)
            continue
        text = str(value).strip().lower()
        if text in _TRUE:
            numbers[i] = 1.0
        elif text in _FALSE:
            numbers[i] = 0.0
        elif text == "-":
            absent[i] = True
        elif text or isinstance(value, list | dict):
            bad.append(i)
    if bad:
        _raise_bad(values, bad, column, dataset, "true/false or 0/1")
    return numbers, absent


def check_members(spec, records: list[dict]) -> None:
    """Check the records of a merged set device by device, for clear messages."""
    devices = [r.get("device", _MISSING) for r in records]
    _check_present(devices, "device", spec.name)
    groups: dict[str, list[int]] = {}
    for i, device in enumerate(devices):
        groups.setdefault(str(device).strip(), []).append(i)
    unknown = sorted(set(groups) - set(spec.members))
    if unknown:
        rows = [i for name in unknown for i in groups[name]]
        raise ScoringError(
            f"field 'device': unknown device(s) {unknown[:5]} in record(s) "
            f"{rows[:5]}; expected one of {list(spec.members)}"
        )
    for device, rows in groups.items():
        try:
            typed_columns([records[i] for i in rows], get_spec(device))
        except ScoringError as exc:
            raise ScoringError(
                f"{exc} (positions within the {device} records)"
            ) from exc
