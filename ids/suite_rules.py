"""What each dataset's Great Expectations suite asserts, learned from a trusted file.

Per column: its type, how often it may be null, and its closed vocabulary or
its learned range; per file: the row count of either known release.
``ids.validation`` builds, saves and runs the suites.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ids.catalog import (
    BOOLEAN,
    CATEGORICAL,
    CLASSES,
    NUMERIC,
    NUMERIC_DASH,
    DatasetSpec,
    get_spec,
)

# Closed vocabularies: the values a trusted file shows are joined with these
# (Zeek's own vocabularies for proto and conn_state), so that a release holding
# a level the trusted file lacks still passes. Every other string column is open.
_FLAGS = ("T", "F", "-")
_CLOSED: dict[str, tuple] = {
    "label": (0, 1),
    "type": CLASSES,
    "proto": ("tcp", "udp", "icmp", "unknown_transport"),
    "conn_state": (
        *("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR"),
        *("RSTOS0", "RSTRH", "SH", "SHR", "OTH"),
    ),
    **{c: _FLAGS for c in ("dns_AA", "dns_RD", "dns_RA", "dns_rejected")},
    **{c: _FLAGS for c in ("ssl_resumed", "ssl_established", "weird_notice")},
    "door_state": ("open", "closed"),
    "sphone_signal": (0, 1),
    "temp_condition": ("low", "high"),
    "light_status": ("on", "off"),
    "motion_status": (0, 1),
    "thermostat_status": (0, 1),
}
# Known row counts per release. The older telemetry release holds 15,000 normal
# rows where the newer holds 35,000, so a device file differs by 20,000 rows.
_RELEASE_ROWS = {"network": (211_043, 461_043)}
_TELEMETRY_RELEASE_GAP = 20_000
_ROW_MARGIN = 0.1
# Learned ranges widen by this share of their span. The network file's counters
# (bytes, packets, duration) are heavy-tailed and the 461,043-row release adds
# 250,000 connections this file does not show, hence the wider margin there.
_RANGE_MARGIN = {"network": 1.0}
_DEFAULT_RANGE_MARGIN = 0.1
# Bounds a value cannot leave whatever the release: 16-bit ports and Modbus
# registers, humidity in percent. A learned range is clipped to them.
_NATURAL_BOUNDS = {
    **{c: (0, 65_535) for c in ("src_port", "dst_port")},
    **{c: (0, 65_535) for c in get_spec("modbus").columns if c.startswith("FC")},
    "humidity": (0, 100),
}
# A sparse column of one release is diluted in the other (461,043 vs 211,043 rows
# for network), so its learned not-null share is relaxed by this factor.
_SPARSE_MOSTLY_FACTOR = 0.25
# Without a real file (Windows) a schema-built suite tolerates some gaps.
_SCHEMA_MOSTLY = 0.95


def column_kind(spec: DatasetSpec, column: str) -> str:
    """How a suite types ``column``: its catalog kind; ``label`` is a number."""
    if column == "label":
        return NUMERIC
    return spec.columns.get(column, CATEGORICAL)


def _expect(kind: str, **kwargs):
    from great_expectations import expectations as gxe

    return getattr(gxe, kind)(**kwargs)


def _row_bounds(name: str, spec: DatasetSpec, rows: int, newer: bool) -> tuple:
    known = _RELEASE_ROWS.get(name)
    if known is None:
        other = (
            rows - _TELEMETRY_RELEASE_GAP if newer else rows + _TELEMETRY_RELEASE_GAP
        )
        known = (rows, max(other, 1))
    low = math.floor(min(known) * (1 - _ROW_MARGIN))
    return low, math.ceil(max(known) * (1 + _ROW_MARGIN))


def _range(values: pd.Series, share: float) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    margin = share * ((high - low) or abs(high) or 1.0)
    lower = low - margin if low < 0 else max(low - margin, 0.0)
    upper = high + margin
    if np.all(np.mod(values, 1) == 0):
        lower, upper = math.floor(lower), math.ceil(upper)
    floor, ceiling = _NATURAL_BOUNDS.get(values.name, (-math.inf, math.inf))
    return max(lower, floor), min(upper, ceiling)


def _column_expectations(
    column: str, kind: str, values: pd.Series | None, margin: float
) -> list:
    """Type, not-null, and range or value set for one column."""
    numeric = kind in (NUMERIC, NUMERIC_DASH, BOOLEAN)
    types = ["float64", "int64"] if numeric else ["StringDtype"]
    found = [
        _expect("ExpectColumnValuesToBeInTypeList", column=column, type_list=types)
    ]
    share = 1.0 if values is None else float(values.notna().mean())
    mostly = _SCHEMA_MOSTLY if values is None else share
    if share < 0.5:
        mostly = math.floor(share * _SPARSE_MOSTLY_FACTOR * 1e6) / 1e6
    elif share < 1.0:
        mostly = math.floor(share * 0.99 * 1e4) / 1e4
    found.append(
        _expect("ExpectColumnValuesToNotBeNull", column=column, mostly=min(mostly, 1.0))
    )
    present = None if values is None else values.dropna()
    if column in _CLOSED:
        seen = set() if present is None else set(present.unique())
        cast = float if numeric else str
        value_set = sorted({cast(v) for v in _CLOSED[column]} | {cast(v) for v in seen})
        found.append(
            _expect("ExpectColumnValuesToBeInSet", column=column, value_set=value_set)
        )
    elif numeric and present is not None and len(present):
        low, high = _range(present, margin)
        found.append(
            _expect(
                "ExpectColumnValuesToBeBetween",
                column=column,
                min_value=low,
                max_value=high,
            )
        )
    return found


def suite_expectations(
    name: str, spec: DatasetSpec, frame: pd.DataFrame | None
) -> tuple[list, dict]:
    """The expectations of ``name``'s suite and its metadata.

    ``frame`` is the trusted file as :func:`ids.validation.prepare_frame` types
    it, or None for a suite built from the catalog's schema alone.
    """
    meta: dict = {"generated_by": "ids.validation.build_suite"}
    found = []
    for column in spec.required_columns:
        found.append(_expect("ExpectColumnToExist", column=column))
    if frame is None:
        meta["source"] = "schema of ids.catalog (no real file available)"
        found.append(_expect("ExpectTableRowCountToBeBetween", min_value=1))
    else:
        low, high = _row_bounds(name, spec, len(frame), "ts" in frame.columns)
        found.append(
            _expect("ExpectTableRowCountToBeBetween", min_value=low, max_value=high)
        )
    # Optional columns (ts) get no column expectations: GX cannot make one depend
    # on the column being there, and each release must pass.
    margin = _RANGE_MARGIN.get(name, _DEFAULT_RANGE_MARGIN)
    for column in spec.required_columns:
        values = None if frame is None else frame[column]
        found += _column_expectations(column, column_kind(spec, column), values, margin)
    return found, meta
