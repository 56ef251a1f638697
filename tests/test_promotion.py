"""Champion/challenger decisions, the shared test split, incoming labeled rows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ids.catalog import dataset_path, get_spec, resolve_data_dir
from ids.data import load_dataset
from ids.ingest import IncomingError, incoming_files, load_incoming
from ids.promotion import (
    decide_promotion,
    protocol_test_split,
    score_champion_on,
    score_detector_on,
)

PER_CLASS = 20


@pytest.mark.parametrize(
    ("challenger", "champion", "min_gain", "promote", "phrase"),
    [
        (0.80, None, 0.0, True, "no usable champion"),
        (0.80, 0.70, 0.0, True, "beats champion 0.7000"),
        (0.70, 0.70, 0.0, False, "does not beat champion 0.7000"),
        (0.69, 0.70, 0.0, False, "gain -0.0100"),
        (0.705, 0.70, 0.01, False, "needed > 0.01"),
        (0.80, math.nan, 0.0, True, "champion has no f1_macro"),
        (math.nan, 0.70, 0.0, False, "challenger has no f1_macro"),
    ],
)
def test_decide_promotion_promotes_only_a_strictly_better_challenger(
    challenger, champion, min_gain, promote, phrase
):
    champion_scores = None if champion is None else {"f1_macro": champion}

    decision = decide_promotion(
        {"f1_macro": challenger}, champion_scores, "f1_macro", min_gain
    )

    assert decision.promote is promote
    assert phrase in decision.reason


@pytest.mark.parametrize(
    ("scores", "kwargs", "message"),
    [
        ({"accuracy": 0.9}, {}, "metric 'f1_macro' missing from the challenger"),
        ({"f1_macro": 0.9}, {"min_gain": -0.1}, "min_gain must be a number >= 0"),
    ],
)
def test_decide_promotion_rejects_bad_input(scores, kwargs, message):
    with pytest.raises(ValueError, match=message):
        decide_promotion(scores, None, **kwargs)


def _fridge_slice(per_class: int = PER_CLASS) -> pd.DataFrame:
    """The first rows of each class of the real fridge file, as strings."""
    path = dataset_path(get_spec("fridge"), resolve_data_dir())
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    return raw.groupby("type", group_keys=False).head(per_class).reset_index(drop=True)


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_incoming_gives_the_columns_of_the_loaded_records(tmp_path):
    raw = _fridge_slice()
    _write(tmp_path / "fridge", "a.csv", raw.to_csv(index=False))
    loaded = load_dataset("fridge", max_rows=500)

    incoming = load_incoming("fridge", tmp_path)

    assert len(incoming) == len(raw)
    assert set(incoming.columns) == set(loaded.records.columns)
    assert incoming["fridge_temperature"].dtype == np.float64
    assert set(incoming["type"]) == set(raw["type"].str.strip().str.lower())
    assert incoming_files("fridge", tmp_path) == [tmp_path / "fridge" / "a.csv"]


def test_load_incoming_is_empty_without_files(tmp_path):
    assert len(load_incoming("network", tmp_path)) == 0


def test_load_incoming_merges_device_files_for_telemetry_combined(tmp_path):
    raw = _fridge_slice()
    _write(tmp_path / "fridge", "new.csv", raw.to_csv(index=False))

    incoming = load_incoming("telemetry_combined", tmp_path)

    assert len(incoming) == len(raw)
    assert set(incoming["device"]) == {"fridge"}
    assert (incoming["absent__latitude"] == 1.0).all()


def _renamed(raw: pd.DataFrame) -> str:
    return raw.rename(columns={"fridge_temperature": "temp"}).to_csv(index=False)


def _bad_label(raw: pd.DataFrame) -> str:
    out = raw.copy()
    out.loc[0, "type"] = "earthquake"
    return out.to_csv(index=False)


def _disagreeing(raw: pd.DataFrame) -> str:
    out = raw.copy()
    first_normal = out.index[out["type"].str.strip() == "normal"][0]
    out.loc[first_normal, "label"] = "1"
    return out.to_csv(index=False)


def _bad_number(raw: pd.DataFrame) -> str:
    out = raw.copy()
    out.loc[3, "fridge_temperature"] = "warm"
    return out.to_csv(index=False)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda raw: "", r"bad\.csv.*empty"),
        (
            lambda raw: raw.head(0).to_csv(index=False),
            r"bad\.csv has a header but no rows",
        ),
        (_renamed, r"bad\.csv.*\['fridge_temperature'\] missing"),
        (_bad_label, r"bad\.csv.*'type' holds \['earthquake'\]"),
        (_disagreeing, r"bad\.csv.*label and type disagree on line"),
        (_bad_number, r"bad\.csv.*'fridge_temperature' expects a number.*'warm'"),
    ],
)
def test_load_incoming_names_the_bad_file(tmp_path, make, message):
    folder = tmp_path / "fridge"
    _write(folder, "good.csv", _fridge_slice().to_csv(index=False))
    _write(folder, "bad.csv", make(_fridge_slice()))

    with pytest.raises(IncomingError, match=message):
        load_incoming("fridge", tmp_path)


@pytest.fixture(scope="module")
def fridge_run(tmp_path_factory):
    """A small real training run of two sklearn candidates on the fridge file."""
    from ids.training import TrainingConfig, train_dataset

    loaded = load_dataset("fridge", max_rows=3000)
    config = TrainingConfig(models=("dt", "lr"), max_rows=3000, strict=False)
    out = tmp_path_factory.mktemp("runs")
    return loaded, train_dataset("fridge", "binary", config, out_dir=out, loaded=loaded)


def test_protocol_test_split_is_the_split_training_tested_on(fridge_run):
    loaded, result = fridge_run

    held_out = protocol_test_split(loaded, seed=0)
    scores = score_detector_on(
        result.detectors[result.best], held_out.records, held_out.targets["binary"]
    )

    assert len(held_out) == result.split_counts["test"]
    best = next(r for r in result.rows if r["tag"] == result.best)
    assert scores["f1_macro"] == pytest.approx(best["f1_macro"])
    assert scores["rows"] == best["rows_test"]
    assert set(held_out.targets["multiclass"]) <= set(
        get_spec("fridge").classes("multiclass")
    )


def test_score_champion_on_gives_none_for_a_champion_that_cannot_score(
    fridge_run, tmp_path
):
    loaded, result = fridge_run
    held_out = protocol_test_split(loaded)
    records = held_out.records.drop(columns=["fridge_temperature"])

    assert score_champion_on(None, records, held_out.targets["binary"]) is None
    assert (
        score_champion_on(tmp_path / "gone", records, held_out.targets["binary"])
        is None
    )
    assert (
        score_champion_on(
            result.detectors[result.best], records, held_out.targets["binary"]
        )
        is None
    )
