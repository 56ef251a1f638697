"""Tests of ids.forest_inference: treelite's walk gives scikit-learn's probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from ids.catalog import get_spec
from ids.data import input_columns, load_dataset
from ids.detector import Detector, reference_sample
from ids.features import build_preprocessor, fit_preprocessor, transform_records
from ids.forest_inference import MAX_ROWS, LeafLookup, leaf_lookup
from ids.models import model_proba
from ids.serving import Champion
from ids.splits import deduplicate, stratified_split


@pytest.fixture(scope="module")
def network_inputs():
    """Preprocessed real network rows: the training matrix and held-out rows."""
    loaded = load_dataset("network", max_rows=4000)
    records = deduplicate(loaded.records, loaded.raw_hash)
    spec = get_spec("network")
    X = records[input_columns(spec)]
    y = records["type"].to_numpy().astype(object)
    split = stratified_split(y, seed=0)
    fitted, X_train, y_train = fit_preprocessor(
        build_preprocessor(spec, seed=0), X.iloc[split.train], y[split.train]
    )
    held_out = transform_records(fitted, X.iloc[split.test])
    return fitted, X_train, y_train, held_out, X.iloc[split.train]


MODELS = {
    "rf": lambda: RandomForestClassifier(n_estimators=25, random_state=0),
    "et": lambda: ExtraTreesClassifier(n_estimators=25, random_state=0),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_leaf_lookup_probabilities_equal_scikit_learn_bit_for_bit(network_inputs, name):
    _, X_train, y_train, held_out, _ = network_inputs
    model = MODELS[name]().fit(X_train, y_train)
    lookup = leaf_lookup(model, X_train[:500])
    assert lookup is not None

    for size in (1, 2, 7, MAX_ROWS):
        for start in range(0, len(held_out) - size, 41):
            rows = held_out[start : start + size]
            assert np.array_equal(lookup.proba(rows), model_proba(model, rows))
    assert np.array_equal(lookup.proba(held_out), model_proba(model, held_out))
    # Forests of shallow leaves average to fractions: not a trivial case.
    assert len(np.unique(lookup.proba(held_out))) > 2


def test_leaf_lookup_notices_a_walk_that_differs(network_inputs):
    _, X_train, y_train, held_out, _ = network_inputs
    model = RandomForestClassifier(n_estimators=5, random_state=0)
    model.fit(X_train, y_train)
    lookup = LeafLookup(model)
    assert lookup.agrees(held_out)

    # treelite holds a copy of the trees; move one of scikit-learn's root splits.
    tree = model.estimators_[3].tree_
    tree.threshold[0] = np.float64(tree.threshold[0]) + 0.25

    assert not lookup.agrees(held_out)


def test_leaf_lookup_refuses_input_of_another_width(network_inputs):
    _, X_train, y_train, held_out, _ = network_inputs
    model = RandomForestClassifier(n_estimators=3, random_state=0)
    lookup = LeafLookup(model.fit(X_train, y_train))

    with pytest.raises(ValueError, match="features per row"):
        lookup.proba(held_out[:, :-1])


def test_leaf_lookup_is_none_for_models_it_does_not_cover(network_inputs):
    _, X_train, y_train, _, _ = network_inputs
    linear = LogisticRegression(max_iter=200).fit(X_train, y_train)
    assert leaf_lookup(linear, X_train[:50]) is None
    # One tree: scikit-learn's single call is cheaper than treelite's.
    tree = DecisionTreeClassifier(random_state=0).fit(X_train, y_train)
    assert leaf_lookup(tree, X_train[:50]) is None
    forest = RandomForestClassifier(n_estimators=3, random_state=0)
    assert leaf_lookup(forest.fit(X_train, y_train), X_train[:0]) is None


def test_champion_scores_small_batches_through_treelite_alike(network_inputs):
    fitted, X_train, y_train, _, train_rows = network_inputs
    classes = get_spec("network").classes("multiclass")
    codes = np.array([classes.index(v) for v in y_train])
    model = RandomForestClassifier(n_estimators=25, random_state=0)
    model.fit(X_train, codes)
    detector = Detector(
        "network",
        "multiclass",
        classes,
        list(train_rows.columns),
        fitted,
        model,
        "rf",
        reference=reference_sample(train_rows),
    )
    champion = Champion("ids-network-multiclass:test", detector)
    assert champion.leaves is not None

    rows = train_rows.sample(60, random_state=1)
    columns = {c: rows[c].to_numpy() for c in rows.columns}
    whole = champion.proba(columns)  # over MAX_ROWS: scikit-learn
    singles = [{c: v[i : i + 1] for c, v in columns.items()} for i in range(60)]
    one_by_one = np.vstack([champion.proba(single) for single in singles])
    assert np.array_equal(whole, one_by_one)
    assert np.array_equal(whole, detector.predict_proba_typed(rows))
