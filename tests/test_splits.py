"""Tests of ids.splits: real dedup counts, the 60/15/15/10 split, the strict split."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from ids.catalog import get_spec
from ids.data import input_columns, load_dataset
from ids.splits import (
    FRACTIONS,
    SPLITS,
    deduplicate,
    grouped_split,
    input_keys,
    stratified_split,
)


@pytest.mark.parametrize(
    "name, duplicates",
    [
        ("fridge", 8_901),
        ("garage_door", 38_836),
        ("modbus", 19_744),
        ("motion_light", 28_629),
        ("thermostat", 1_154),
    ],
)
def test_deduplicate_removes_readme_duplicate_count(name, duplicates, caplog):
    loaded = load_dataset(name)

    with caplog.at_level(logging.INFO, logger="ids.splits"):
        frame = deduplicate(loaded.records, loaded.raw_hash)

    assert len(frame) == loaded.rows_read - duplicates
    assert f"{duplicates} identical raw rows removed" in caplog.text
    assert list(frame.index) == list(range(len(frame)))


def test_deduplicate_removes_readme_duplicate_count_of_network_file(caplog):
    # The whole file (~20 s to load): read once, for the README's count.
    loaded = load_dataset("network")

    with caplog.at_level(logging.INFO, logger="ids.splits"):
        frame = deduplicate(loaded.records, loaded.raw_hash)

    assert loaded.rows_read == 211_043
    assert loaded.release == "older (211,043 rows, no ts)"
    assert len(frame) == 211_043 - 20_569
    assert "20569 identical raw rows removed" in caplog.text


def test_deduplicate_rejects_hashes_of_another_frame():
    loaded = load_dataset("fridge", max_rows=500)

    with pytest.raises(ValueError, match=r"raw_hash has 10 entries for \d+ rows"):
        deduplicate(loaded.records, loaded.raw_hash[:10])


@pytest.fixture(scope="module")
def fridge():
    loaded = load_dataset("fridge")
    return deduplicate(loaded.records, loaded.raw_hash)


def test_stratified_split_has_protocol_proportions(fridge):
    y = fridge["type"].to_numpy()

    split = stratified_split(y, seed=0)

    counts = split.counts()
    assert list(counts) == list(SPLITS)
    assert sum(counts.values()) == len(y)
    for name, share in zip(SPLITS, FRACTIONS, strict=True):
        assert counts[name] == pytest.approx(share * len(y), abs=2), name
    everything = np.concatenate([getattr(split, name) for name in SPLITS])
    assert len(np.unique(everything)) == len(y)


def test_stratified_split_keeps_class_shares_in_every_part(fridge):
    y = fridge["type"].to_numpy()
    overall = pd.Series(y).value_counts(normalize=True)

    split = stratified_split(y, seed=0)

    for name in SPLITS:
        part = pd.Series(y[getattr(split, name)]).value_counts(normalize=True)
        assert set(part.index) == set(overall.index), name
        assert (part - overall).abs().max() < 0.005, name


def test_stratified_split_is_reproducible_with_fixed_seed(fridge):
    y = fridge["type"].to_numpy()

    first, again, other = (stratified_split(y, seed=s) for s in (0, 0, 1))

    for name in SPLITS:
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.test, other.test)


def test_stratified_split_places_a_tiny_class_somewhere():
    y = np.array(["normal"] * 200 + ["dos"] * 50 + ["mitm"])

    split = stratified_split(y, seed=0)

    assert sum(split.counts().values()) == len(y)
    placed = [name for name in SPLITS if "mitm" in set(y[getattr(split, name)])]
    assert len(placed) == 1


@pytest.mark.parametrize("name", ["fridge", "modbus"])
def test_grouped_split_puts_no_input_vector_in_two_parts(name):
    loaded = load_dataset(name)
    frame = deduplicate(loaded.records, loaded.raw_hash)
    X = frame[input_columns(get_spec(name))]

    split = grouped_split(X, seed=0)

    assert split.kind == "grouped"
    keys = input_keys(X)
    parts = {part: set(keys[getattr(split, part)]) for part in SPLITS}
    assert not parts["train"] & parts["test"]
    assert not parts["train"] & parts["validation"]
    assert not parts["test"] & parts["validation"]
    assert sum(split.counts().values()) == len(X)
    assert split.counts()["train"] == pytest.approx(0.6 * len(X), rel=0.1)


def test_grouped_split_is_uneven_with_two_distinct_inputs():
    loaded = load_dataset("garage_door")
    frame = deduplicate(loaded.records, loaded.raw_hash)
    X = frame[input_columns(get_spec("garage_door"))]
    distinct = len(np.unique(input_keys(X)))

    split = grouped_split(X, seed=0)

    filled = [part for part in SPLITS if len(getattr(split, part))]
    assert len(filled) <= distinct
    assert sum(split.counts().values()) == len(X)
