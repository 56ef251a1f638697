"""Tests of ids.scoring_input: raw request records typed column by column."""

from __future__ import annotations

import numpy as np
import pytest

from ids.catalog import dataset_path, get_spec, resolve_data_dir
from ids.data import read_raw
from ids.scoring_input import ScoringError, _column_plan, _numeric, typed_columns


def _records(dataset: str, rows: int = 300) -> list[dict]:
    """Real rows as the file holds them: strings, padding kept."""
    spec = get_spec(dataset)
    raw, _ = read_raw(dataset_path(spec, resolve_data_dir()), spec)
    return raw.sample(rows, random_state=0).to_dict("records")


def _as_numbers(records: list[dict]) -> list[dict]:
    """The records as a JSON producer would send them: numbers where they parse."""

    def number(value):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value

    return [{k: number(v) for k, v in r.items()} for r in records]


@pytest.mark.parametrize("dataset", ["network", "fridge", "garage_door"])
@pytest.mark.parametrize("form", ["strings", "numbers"])
def test_numbers_typed_together_equal_numbers_typed_one_column_at_a_time(dataset, form):
    records = _records(dataset)
    records = _as_numbers(records) if form == "numbers" else records
    spec = get_spec(dataset)

    for rows in (records[:1], records[1:2], records):
        typed = typed_columns(rows, spec)
        for column, kind, flag in _column_plan(dataset):
            if kind == "categorical" or kind == "boolean" or flag:
                continue
            alone, _ = _numeric([r[column] for r in rows], column, dataset)
            assert typed[column].dtype == np.float64
            assert np.array_equal(typed[column], alone, equal_nan=True), column
        # Each field in file order, its absent flag right after it.
        order = [n for c, _, f in _column_plan(dataset) for n in (c, f) if n]
        assert list(typed) == order


def test_a_boolean_in_a_number_field_is_named():
    (record,) = _records("network", 1)

    with pytest.raises(ScoringError, match=r"field 'src_bytes' expects a number"):
        typed_columns([{**record, "src_bytes": True}], get_spec("network"))


def test_a_padded_number_string_is_a_number():
    (record,) = _records("network", 1)

    typed = typed_columns([{**record, "src_bytes": " 42 "}], get_spec("network"))

    assert typed["src_bytes"].tolist() == [42.0]
