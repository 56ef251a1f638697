"""Reading back the open segments of the inference log (``ids.inference_log``).

A journal (``.jsonl``) holds a header line, ``{"format": JOURNAL_FORMAT,
"schema": <base64 Arrow schema>}``, then one line per scored batch:
``{"scored_at": <microseconds since the epoch>, "columns": {name: [values]}}``.
A line is written whole or, after a crash, left unfinished at the end; the
reader keeps whole lines only. Segments of an earlier layout (Arrow IPC
streams, ``.arrows``) are still read.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

logger = logging.getLogger(__name__)

TIME_COLUMN = "scored_at"
JOURNAL_FORMAT = "ids-inference-log/1"
ARROW_SEGMENT_SUFFIX = ".arrows"


def read_segment(path: Path) -> pa.Table | None:
    """The whole batches of an open segment, or None if it holds none yet."""
    if path.suffix == ARROW_SEGMENT_SUFFIX:
        return _read_arrow_segment(path)
    return read_journal(path)


def read_journal(path: Path) -> pa.Table | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None  # turned into Parquet meanwhile
    header_end = data.find(b"\n")
    if header_end < 0:
        return None
    header = orjson.loads(data[:header_end])
    if header.get("format") != JOURNAL_FORMAT:
        raise ValueError(
            f"{path} is not an inference log journal (format {header.get('format')!r},"
            f" expected {JOURNAL_FORMAT!r}); move it out of the log folder"
        )
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(header["schema"])))
    # Whole lines only: the last piece is unfinished or empty.
    body = data[header_end + 1 : data.rfind(b"\n") + 1]
    try:
        return journal_table(body, schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        # A damaged line (or a type Arrow's reader lacks): line by line.
        return journal_table_by_line(body, schema, path)


def journal_table(body: bytes, schema: pa.Schema) -> pa.Table:
    """The batches of a journal parsed by Arrow's JSON reader.

    The reader runs in C++ without the GIL, so a service worker converting a
    full segment in the background keeps answering requests (the line-by-line
    path held the GIL for ~4 s per 200,000 network records).
    """
    names = [name for name in schema.names if name != TIME_COLUMN]
    lists = pa.struct([pa.field(n, pa.list_(schema.field(n).type)) for n in names])
    layout = pa.schema([("scored_at", pa.int64()), ("columns", lists)])
    batches = pa_json.read_json(
        pa.BufferReader(body),
        read_options=pa_json.ReadOptions(use_threads=False),
        parse_options=pa_json.ParseOptions(
            explicit_schema=layout, unexpected_field_behavior="error"
        ),
    )
    columns = batches.column("columns")
    arrays, sizes = [], np.zeros(batches.num_rows, dtype=np.int64)
    for number, name in enumerate(names):
        values = pc.struct_field(columns, name)
        lengths = pc.list_value_length(values).to_numpy()
        if values.null_count or (number and not np.array_equal(lengths, sizes)):
            raise ValueError(f"column {name!r} missing or of another length")
        sizes = lengths
        arrays.append(values)
    total = int(sizes.sum())
    # The reader's list<null> arrays span more values than they hold (pyarrow
    # 26): an all-null column is rebuilt from its batch lengths.
    arrays = [
        pa.nulls(total) if pa.types.is_null(a.type.value_type) else pc.list_flatten(a)
        for a in arrays
    ]
    stamps = batches.column("scored_at").to_numpy()
    times = np.repeat(stamps.astype(np.int64), sizes.astype(np.int64))
    arrays.append(pa.array(times, type=schema.field(TIME_COLUMN).type))
    return pa.Table.from_arrays(arrays, schema=schema)


def journal_table_by_line(body: bytes, schema: pa.Schema, path: Path) -> pa.Table:
    names = [name for name in schema.names if name != TIME_COLUMN]
    values: dict[str, list] = {name: [] for name in names}
    stamps, counts = [], []
    for number, line in enumerate(body.split(b"\n")[:-1], 2):
        try:
            batch = orjson.loads(line)
            parts = [batch["columns"][name] for name in names]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("%s: line %d is not a whole batch; skipped", path, number)
            continue
        for name, part in zip(names, parts, strict=True):
            values[name].extend(part)
        stamps.append(batch["scored_at"])
        counts.append(len(parts[0]) if names else 0)
    arrays = [pa.array(values[name], type=schema.field(name).type) for name in names]
    times = np.repeat(np.asarray(stamps, dtype=np.int64), counts)
    arrays.append(pa.array(times, type=schema.field(TIME_COLUMN).type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _read_arrow_segment(path: Path) -> pa.Table | None:
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
