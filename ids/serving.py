"""Scoring with the champions: request checks, fast preprocessing, both tasks, logging.

The BentoML service and the offline scorer both call :class:`Scorer`. A
champion's saved preprocessor is compiled into array code (:class:`FastPath`)
from its fitted state and checked against ``Detector.predict_proba`` on
reference rows when loaded; a detector that fails the check, or the merged
telemetry set, is scored through the pandas path of ``ids.detector`` instead.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import operator
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ids import registry
from ids.catalog import BOOLEAN, CATALOG, CATEGORICAL, TASKS, get_spec
from ids.data import _FALSE, _TRUE, RecordError, absent_column, input_columns

logger = logging.getLogger(__name__)

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
    for (column, kind, flag), values in zip(plan, by_column, strict=True):
        values = list(values)
        _check_present(values, column, spec.name)
        if kind == CATEGORICAL:
            out[column] = _categorical(values, column, spec.name)
            continue
        parse = _boolean if kind == BOOLEAN else _numeric
        numbers, absent = parse(values, column, spec.name)
        out[column] = numbers
        if flag:
            out[flag] = absent.astype(np.float64)
    return out


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
    finite = np.isfinite(numbers) | np.isnan(numbers) & _blank(values, absent)
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


class FastPath:
    """The fitted preprocessing chain of a detector as plain array code.

    Reads only fitted state (dropped columns, medians, vocabularies, selected
    features, scaling); :meth:`compile` returns None for a chain with other steps.
    """

    _KNOWN = {"leakage", "clean", "compress", "encode", "select", "balance", "scale"}

    def __init__(self, preprocessor):
        steps = preprocessor.named_steps
        clean = steps["clean"]
        self.medians = dict(clean.medians_)
        self.vocabulary = dict(steps["encode"].vocabulary_)
        compress = steps["compress"].columns_ if "compress" in steps else ()
        self.compressed = set(compress)
        columns = list(clean.columns_)
        self.selected = (
            list(steps["select"].selected_) if "select" in steps else columns
        )
        self.flags = {
            c: absent_column(c) for c in columns if absent_column(c) in columns
        }
        scaler = steps["scale"]
        self.scale, self.offset = scaler.scale_, scaler.min_
        self.clip = scaler.feature_range if scaler.clip else None

    @classmethod
    def compile(cls, detector) -> FastPath | None:
        names = set(detector.preprocessor.named_steps)
        if get_spec(detector.dataset).members or not names <= cls._KNOWN:
            return None
        return cls(detector.preprocessor)

    def transform(self, typed: dict[str, object], rows: int) -> np.ndarray:
        X = np.empty((rows, len(self.selected)), dtype=np.float64)
        for j, column in enumerate(self.selected):
            mapping = self.vocabulary.get(column)
            if mapping is not None:
                values = typed[column]
                X[:, j] = np.fromiter(
                    map(mapping.get, values, itertools.repeat(0)), np.float64, rows
                )
                continue
            values = np.array(typed[column], dtype=np.float64)
            values[np.isinf(values)] = np.nan
            if column in self.flags:
                values[np.asarray(typed[self.flags[column]]) != 0] = 0.0
            values = np.where(np.isnan(values), self.medians[column], values)
            if column in self.compressed:
                values = np.log1p(np.clip(values, 0.0, None))
            X[:, j] = values
        X *= self.scale
        X += self.offset
        if self.clip is not None:
            np.clip(X, self.clip[0], self.clip[1], out=X)
        return X.astype(np.float32)


@dataclass
class Champion:
    """One loaded champion: registry tag, detector and its compiled fast path."""

    tag: str
    detector: object
    fast: FastPath | None

    def proba(self, typed: dict[str, object], rows: int) -> np.ndarray:
        from ids.models import expand_proba

        model = self.detector.model
        X = self.fast.transform(typed, rows)
        return expand_proba(model.predict_proba(X), model.classes_, len(self.classes))

    @property
    def classes(self) -> tuple[str, ...]:
        return self.detector.classes


@dataclass
class ChampionSet:
    """The champions loaded from one version of the pointer file."""

    version: str
    champions: dict[tuple[str, str], Champion] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)

    def tags(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for (dataset, task), entry in sorted(self.champions.items()):
            out.setdefault(dataset, {})[task] = entry.tag
        return out


def load_champion_set(previous: ChampionSet | None = None) -> ChampionSet:
    """Load every promoted champion; detectors whose tag is unchanged are reused."""
    from ids.detector import Detector

    version = registry.pointer_version()
    loaded = ChampionSet(version)
    old = previous.champions if previous else {}
    for key, pointer in sorted(registry.read_champions().items()):
        dataset, _, task = key.partition("/")
        if dataset not in CATALOG or task not in TASKS:
            continue
        if (dataset, task) in old and old[(dataset, task)].tag == pointer["tag"]:
            loaded.champions[(dataset, task)] = old[(dataset, task)]
            continue
        try:
            detector = Detector.load(pointer["path"])
            fast = _checked_fast_path(detector)
        except Exception as exc:  # a broken champion must not take the others down
            logger.exception("cannot load champion %s of %s", pointer["tag"], key)
            loaded.errors[key] = f"{type(exc).__name__}: {exc}"
            if (dataset, task) in old:
                loaded.champions[(dataset, task)] = old[(dataset, task)]
            continue
        loaded.champions[(dataset, task)] = Champion(pointer["tag"], detector, fast)
        logger.info(
            "loaded champion %s for %s (fast path: %s)",
            pointer["tag"],
            key,
            fast is not None,
        )
    return loaded


def _checked_fast_path(detector) -> FastPath | None:
    fast = FastPath.compile(detector)
    if fast is None or detector.reference is None or detector.reference.empty:
        return fast
    sample = _raw_from_reference(detector, detector.reference.head(200))
    spec = get_spec(detector.dataset)
    expected = detector.predict_proba(pd.DataFrame.from_records(sample))
    got = Champion("check", detector, fast).proba(
        typed_columns(sample, spec), len(sample)
    )
    if not np.allclose(expected, got, atol=1e-6):
        logger.warning(
            "%s: compiled preprocessing differs from the saved pipeline on reference "
            "rows (max diff %.3g); scoring it through the pandas path",
            detector.tag,
            float(np.abs(expected - got).max()),
        )
        return None
    return fast


def _raw_from_reference(detector, reference: pd.DataFrame) -> list[dict]:
    """Reference rows written back as raw records ('-' where flagged absent)."""
    spec = get_spec(detector.dataset)
    raw = {}
    for column in spec.feature_columns:
        values = reference[column].astype(object)
        flag = absent_column(column)
        if flag in reference.columns:
            values = values.mask(reference[flag].to_numpy() != 0, "-")
        raw[column] = values.where(values.notna(), "")
    return pd.DataFrame(raw).to_dict("records")


class Scorer:
    """Holds the current champion set, swaps in new ones, scores and logs requests.

    A request takes the set once and uses only it, so a reload (a new set built
    aside, then one reference assignment) never changes models mid-request.
    """

    def __init__(self, *, log: bool = True, log_root=None):
        from ids.inference_log import LogWriter

        self.log = LogWriter(log_root) if log else None
        self._lock = threading.Lock()
        self._set = load_champion_set()
        self._stop = threading.Event()

    @property
    def champions(self) -> ChampionSet:
        return self._set

    def reload(self, force: bool = False) -> bool:
        """Load the champions again if the pointer file changed; True if swapped."""
        with self._lock:
            if not force and registry.pointer_version() == self._set.version:
                return False
            before = self._set.tags()
            self._set = load_champion_set(self._set)
        logger.info("champions reloaded: %s -> %s", before, self._set.tags())
        return True

    def watch(self, interval_s: float) -> threading.Thread:
        """Check the pointer file every ``interval_s`` seconds in a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.reload()
                except Exception:  # keep watching; the old set keeps serving
                    logger.exception("champion reload failed; serving the old set")

        thread = threading.Thread(target=loop, name="champion-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop watching and turn the open log segments into Parquet."""
        self._stop.set()
        if self.log is not None:
            self.log.close()

    def status(self) -> dict:
        """What is loaded: tags per dataset and task, pointer version, errors."""
        current = self._set
        return {
            "champions": current.tags(),
            "pointer_version": current.version,
            "loaded_at": current.loaded_at,
            "errors": current.errors,
            "fast_path": {
                f"{d}/{t}": c.fast is not None
                for (d, t), c in sorted(current.champions.items())
            },
        }

    def score(self, dataset, records) -> dict:
        """Score raw records of ``dataset`` with both champions and log them.

        Raises:
            ScoringError: Bad request (400), too many records (413), or no
                champion for the dataset yet (404).
        """
        current = self._set
        spec = check_request(dataset, records)
        binary = current.champions.get((dataset, "binary"))
        multiclass = current.champions.get((dataset, "multiclass"))
        if binary is None and multiclass is None:
            raise ScoringError(
                f"no champion for dataset {dataset!r} yet (binary or multiclass); "
                f"train and promote one first. Served now: "
                f"{sorted(current.tags()) or 'none'}",
                status=404,
            )

        rows = len(records)
        typed, proba = _score_all(spec, records, [binary, multiclass])
        result = _predictions(binary, multiclass, proba, rows)
        if self.log is not None:
            _log_batch(self.log, dataset, spec, typed, result, binary, multiclass)
        return result["response"]


def _score_all(spec, records, champions) -> tuple[object, list]:
    if spec.members:
        _check_members(spec, records)
    loaded = [c for c in champions if c is not None]
    typed = None
    if all(c.fast is not None for c in loaded):
        typed = typed_columns(records, spec)
        return typed, [c and c.proba(typed, len(records)) for c in champions]
    try:
        frame = loaded[0].detector.prepare(pd.DataFrame.from_records(records))
    except RecordError as exc:
        raise ScoringError(str(exc)) from exc
    proba = [c and c.detector.predict_proba_typed(frame) for c in champions]
    return frame, proba


def _check_members(spec, records: list[dict]) -> None:
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


def _predictions(binary, multiclass, proba, rows: int) -> dict:
    is_attack = attack_p = kinds = kind_p = disagree = None
    if binary is not None:
        attack_p = proba[0][:, binary.classes.index("attack")]
        is_attack = np.argmax(proba[0], axis=1) == binary.classes.index("attack")
    if multiclass is not None:
        best = np.argmax(proba[1], axis=1)
        kinds = np.asarray(multiclass.classes, dtype=object)[best]
        kind_p = proba[1][np.arange(rows), best]
    if is_attack is not None and kinds is not None:
        disagree = is_attack != (kinds != "normal")

    columns = {
        "is_attack": is_attack,
        "attack_probability": attack_p,
        "attack_type": kinds,
        "attack_type_probability": kind_p,
        "disagree": disagree,
    }
    nothing = [None] * rows
    listed = [
        columns[k].tolist() if columns[k] is not None else nothing
        for k in ("is_attack", "attack_probability", "attack_type", "disagree")
    ]
    if multiclass is not None:
        names = multiclass.classes
        class_rows = [dict(zip(names, row, strict=True)) for row in proba[1].tolist()]
    else:
        class_rows = nothing
    predictions = [
        {
            "is_attack": attack,
            "attack_probability": p_attack,
            "attack_type": kind,
            "probabilities": probabilities,
            "disagree": differs,
        }
        for attack, p_attack, kind, differs, probabilities in zip(
            *listed, class_rows, strict=True
        )
    ]
    models = {
        "binary": binary.tag if binary else None,
        "multiclass": multiclass.tag if multiclass else None,
    }
    response = {"count": rows, "models": models, "predictions": predictions}
    return {"response": response, "columns": columns}


def _log_batch(writer, dataset, spec, typed, result, binary, multiclass) -> None:
    import pyarrow as pa

    rows = result["response"]["count"]
    wanted = input_columns(spec)
    if isinstance(typed, pd.DataFrame):
        fields = {c: typed[c].to_numpy() for c in wanted if c in typed.columns}
    else:
        fields = {c: typed[c] for c in wanted if c in typed}
    for name, values in result["columns"].items():
        fields[name] = values if values is not None else pa.nulls(rows)
    fields["binary_model"] = [binary.tag if binary else None] * rows
    fields["multiclass_model"] = [multiclass.tag if multiclass else None] * rows
    try:
        writer.write(dataset, fields)
    except OSError as exc:
        raise ScoringError(
            f"inference log not writable ({exc}); records are not scored unless "
            "logged. Free disk space or fix $IDS_INFERENCE_LOG",
            status=503,
        ) from exc
