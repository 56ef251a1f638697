"""Preprocessing estimators, fitted on the training split and saved with the model.

Every step follows the scikit-learn contract and the chain is an
``imblearn.pipeline.Pipeline``: cleaning, label encoding, the leakage filter,
ReliefF selection, SMOTE balancing (training only) and Min-Max scaling.

Each step's work is one ``transform_columns`` method on a dict of column
arrays; ``transform`` on a DataFrame calls it. :func:`transform_columns` runs
a fitted chain that way, and training, evaluation and the service all go
through it, so a served record meets exactly the code its model was fitted with.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
from imblearn.pipeline import Pipeline
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import MinMaxScaler

from ids.balancing import SafeSMOTE
from ids.catalog import ABSENT_PREFIX, CATEGORICAL, DatasetSpec
from ids.data import input_columns

logger = logging.getLogger(__name__)

UNKNOWN_CODE = 0

# Column name to its values (a 1-D array, or a list of strings for a
# categorical column), all of one length.
Columns = dict[str, object]


def _as_frame(X) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of records, got {type(X)!r}")
    return X


def frame_columns(X: pd.DataFrame) -> Columns:
    """The columns of a frame as arrays, in its column order."""
    return {column: X[column].to_numpy() for column in _as_frame(X).columns}


class _ColumnStep(TransformerMixin, BaseEstimator):
    """A step whose frame ``transform`` is its ``transform_columns``."""

    def transform(self, X):
        X = _as_frame(X)
        return pd.DataFrame(self.transform_columns(frame_columns(X)), index=X.index)

    def transform_columns(self, columns: Columns) -> Columns:  # pragma: no cover
        raise NotImplementedError


class LeakageFilter(_ColumnStep):
    """Drop every column that alone predicts attack-or-not (the leakage audit).

    Args:
        threshold: Held-out accuracy at or above which a single column is a proxy.
        seed: Seed of the audit's half split.
    """

    def __init__(self, threshold: float = 0.99, seed: int = 0):
        self.threshold = threshold
        self.seed = seed

    def fit(self, X, y):
        from ids.audit import audit_leakage

        X = _as_frame(X)
        is_attack = pd.Series(np.asarray(y) != "normal", index=X.index).astype(int)
        self.report_ = audit_leakage(X, is_attack, None, self.threshold, self.seed)
        dropped = set(self.report_.drop_columns)
        # A flag goes with the column it flags.
        self.drop_columns_ = [
            c
            for c in X.columns
            if c in dropped or c.removeprefix(ABSENT_PREFIX) in dropped
        ]
        if self.drop_columns_:
            logger.info("leakage audit drops %s", self.drop_columns_)
        return self

    def transform_columns(self, columns: Columns) -> Columns:
        _check_fitted(self, "drop_columns_")
        dropped = set(self.drop_columns_)
        return {c: v for c, v in columns.items() if c not in dropped}


class RecordCleaner(_ColumnStep):
    """Fill numbers: 0 where flagged absent, the training median for NaN/inf.

    Args:
        categorical: Names of the categorical columns (left as strings).
    """

    def __init__(self, categorical: tuple[str, ...] = ()):
        self.categorical = categorical

    def fit(self, X, y=None):
        X = _as_frame(X)
        numeric = [c for c in X.columns if c not in self.categorical]
        values = X[numeric].replace([np.inf, -np.inf], np.nan)
        medians = values.median()
        self.medians_ = medians.fillna(0.0).to_dict()
        self.columns_ = list(X.columns)
        self.plan_ = self._plan()
        return self

    def _plan(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
        # Position of each numeric column, the medians in that order, and the
        # positions of each flagged column and of its flag.
        position = {c: j for j, c in enumerate(self.medians_)}
        flagged = [c for c in position if f"{ABSENT_PREFIX}{c}" in position]
        return (
            position,
            np.array(list(self.medians_.values()), dtype=np.float64),
            np.array([position[c] for c in flagged], dtype=np.intp),
            np.array([position[f"{ABSENT_PREFIX}{c}"] for c in flagged], dtype=np.intp),
        )

    def transform_columns(self, columns: Columns) -> Columns:
        _check_fitted(self, "medians_")
        missing = [c for c in self.columns_ if c not in columns]
        if missing:
            raise ValueError(f"record field(s) {missing} missing; the model needs them")
        position, medians, flagged, flags = getattr(self, "plan_", None) or self._plan()
        # The numbers as one block: a handful of array operations for any
        # number of columns, which keeps a single record cheap.
        block = stack_columns(columns, list(position))
        block[np.isinf(block)] = np.nan
        if len(flagged):
            part = block[:, flagged]
            part[block[:, flags] != 0] = 0.0
            block[:, flagged] = part
        empty = np.isnan(block)
        if empty.any():
            block = np.where(empty, medians, block)
        return {
            c: block[:, position[c]] if c in position else _fill_category(columns[c])
            for c in self.columns_
        }


def stack_columns(columns: Columns, names: list[str]) -> np.ndarray:
    """The named columns side by side in a new float64 matrix."""
    block = np.empty((_length(columns), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        block[:, j] = columns[name]
    return block


def _fill_category(values):
    """Categorical values with '-' where none was given."""
    if isinstance(values, list) and set(map(type, values)) <= {str}:
        return values  # what the service sends: nothing to fill
    values = np.asarray(values, dtype=object)
    empty = pd.isna(values)
    if empty.any():
        values = values.copy()
        values[empty] = "-"
    return values


class TailCompressor(_ColumnStep):
    """``log1p`` of the numeric columns that are never negative in training.

    Byte and packet counts span seven orders of magnitude; after Min-Max alone
    nearly every value sits next to 0, which starves the recurrent models (our
    addition to the paper's chain, measured on a network slice: RNN-GRU macro-F1
    0.62 -> 0.75). Trees are unaffected by a monotone transform.

    Args:
        categorical: Columns left alone (they become codes later).
    """

    def __init__(self, categorical: tuple[str, ...] = ()):
        self.categorical = categorical

    def fit(self, X, y=None):
        X = _as_frame(X)
        numeric = [
            c
            for c in X.columns
            if c not in self.categorical and not c.startswith(ABSENT_PREFIX)
        ]
        self.columns_ = [c for c in numeric if X[c].min() >= 0 and X[c].max() > 1]
        return self

    def transform_columns(self, columns: Columns) -> Columns:
        _check_fitted(self, "columns_")
        out = dict(columns)
        for column in self.columns_:
            out[column] = np.log1p(np.maximum(columns[column], 0.0))
        return out


class CategoryEncoder(_ColumnStep):
    """Label-encode categorical columns with a reserved unknown code 0.

    Codes come from an exact lookup of the training values, so an unseen value
    ('ftp-data' when only 'ftp' was seen) always gets the unknown code.

    Args:
        categorical: Names of the categorical columns.
    """

    def __init__(self, categorical: tuple[str, ...] = ()):
        self.categorical = categorical

    def fit(self, X, y=None):
        X = _as_frame(X)
        self.vocabulary_ = {
            column: {
                value: code
                for code, value in enumerate(sorted(X[column].astype(str).unique()), 1)
            }
            for column in self.categorical
            if column in X.columns
        }
        self.columns_ = list(X.columns)
        return self

    def transform_columns(self, columns: Columns) -> Columns:
        _check_fitted(self, "vocabulary_")
        out = {}
        for column, values in columns.items():
            mapping = self.vocabulary_.get(column)
            if mapping is None:
                out[column] = np.asarray(values, dtype=np.float64)
                continue
            codes = map(mapping.get, map(str, values), itertools.repeat(UNKNOWN_CODE))
            out[column] = np.fromiter(codes, np.float64, len(values))
        return out


class ReliefFSelector(_ColumnStep):
    """Keep the top features by ReliefF, scored on a stratified subsample.

    Args:
        n_features: How many features to keep.
        max_rows: Rows of the subsample (ReliefF is quadratic in rows).
        n_neighbors: ReliefF's neighbour count.
        seed: Seed of the subsample.
    """

    def __init__(
        self, n_features: int = 20, max_rows: int = 1500, n_neighbors: int = 10, seed=0
    ):
        self.n_features = n_features
        self.max_rows = max_rows
        self.n_neighbors = n_neighbors
        self.seed = seed

    def fit(self, X, y):
        from skrebate import ReliefF

        X = _as_frame(X)
        y = np.asarray(y)
        rows = stratified_positions(y, self.max_rows, self.seed)
        keep = min(self.n_features, X.shape[1])
        relief = ReliefF(n_features_to_select=keep, n_neighbors=self.n_neighbors)
        codes = pd.factorize(y[rows])[0]
        relief.fit(X.iloc[rows].to_numpy(np.float64), codes)
        order = np.argsort(relief.feature_importances_)[::-1][:keep]
        self.scores_ = dict(zip(X.columns, relief.feature_importances_, strict=True))
        self.selected_ = [X.columns[i] for i in sorted(order)]
        logger.info("ReliefF keeps %d of %d features", keep, X.shape[1])
        return self

    def transform_columns(self, columns: Columns) -> Columns:
        _check_fitted(self, "selected_")
        missing = [c for c in self.selected_ if c not in columns]
        if missing:
            raise KeyError(f"selected feature(s) {missing} missing from the records")
        return {c: columns[c] for c in self.selected_}


def stratified_positions(y: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    if len(y) <= max_rows:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = max_rows / len(y)
    picked = []
    for cls, count in zip(classes, counts, strict=True):
        members = np.flatnonzero(y == cls)
        take = max(1, min(count, round(count * share)))
        picked.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(picked))


class ColumnMinMaxScaler(MinMaxScaler):
    """scikit-learn's Min-Max scaling, taking its columns by name.

    The columns are stacked in the order seen in fit, so the matrix the model
    gets never depends on the order in which a request lists its fields. The
    last step of the chain: it returns the model's input matrix.
    """

    def fit(self, X, y=None):
        X = _as_frame(X)
        self.columns_ = list(X.columns)
        return super().fit(X.to_numpy(np.float64))

    def transform(self, X):
        return self.transform_columns(frame_columns(_as_frame(X)))

    def transform_columns(self, columns: Columns) -> np.ndarray:
        _check_fitted(self, "columns_")
        X = stack_columns(columns, self.columns_)
        # scikit-learn's own transform is this arithmetic on its fitted scale_
        # and min_, behind input checks that cost 0.2 ms a call; the inputs
        # here are already typed and cleaned.
        X *= self.scale_
        X += self.min_
        if self.clip:
            np.clip(X, self.feature_range[0], self.feature_range[1], out=X)
        return X


def _check_fitted(step, attribute: str) -> None:
    # scikit-learn's check_is_fitted reads the estimator's tags first: ~10 µs
    # a call, six calls in a single-record request.
    if not hasattr(step, attribute):
        raise NotFittedError(
            f"this {type(step).__name__} is not fitted yet; call fit before transform"
        )


def _length(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def build_preprocessor(
    spec: DatasetSpec,
    *,
    audit_threshold: float = 0.99,
    smote: bool | None = None,
    relieff_features: int | None = None,
    smote_max_per_class: int | None = None,
    seed: int = 0,
) -> Pipeline:
    """The unfitted preprocessing chain of a dataset, as the paper orders it."""
    categorical = tuple(
        c for c in input_columns(spec) if spec.columns.get(c) == CATEGORICAL
    )
    steps = [
        ("leakage", LeakageFilter(audit_threshold, seed)),
        ("clean", RecordCleaner(categorical)),
        ("compress", TailCompressor(categorical)),
        ("encode", CategoryEncoder(categorical)),
    ]
    n_relief = (
        relieff_features if relieff_features is not None else spec.relieff_features
    )
    if n_relief:
        steps.append(("select", ReliefFSelector(n_relief, seed=seed)))
    if spec.smote if smote is None else smote:
        steps.append(
            (
                "balance",
                SafeSMOTE(categorical, max_per_class=smote_max_per_class, seed=seed),
            )
        )
    steps.append(("scale", ColumnMinMaxScaler(clip=True)))
    return Pipeline(steps)


def fit_preprocessor(
    preprocessor: Pipeline, X: pd.DataFrame, y
) -> tuple[Pipeline, np.ndarray, np.ndarray]:
    """Fit the chain on training rows; returns it with the model's training set.

    Samplers run here only: ``preprocessor.transform`` skips them, so validation,
    test and live records are never resampled.
    """
    X = _as_frame(X)
    y = np.asarray(y)
    fitted = clone(preprocessor)
    for _, step in fitted.steps:
        if hasattr(step, "fit_resample"):
            X, y = step.fit_resample(X, y)
        else:
            X = step.fit(X, y).transform(X)
    return fitted, np.asarray(X, dtype=np.float32), y


def selected_features(preprocessor: Pipeline) -> list[str]:
    """Names of the columns the model sees, in its input order."""
    names = list(preprocessor.named_steps["clean"].columns_)
    if "select" in preprocessor.named_steps:
        names = list(preprocessor.named_steps["select"].selected_)
    return names


def transform_records(preprocessor: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """Apply a fitted chain to a typed frame of records (no resampling)."""
    return transform_columns(preprocessor, frame_columns(_as_frame(X)))


def transform_columns(preprocessor: Pipeline, columns: Columns) -> np.ndarray:
    """Apply a fitted chain to typed records given as columns (no resampling).

    Samplers are skipped. Every step of ours runs its ``transform_columns``; a
    step without one (a chain saved before it existed) gets a DataFrame.
    """
    if not _length(columns):
        # A grouped split can leave a part empty; scalers refuse zero rows.
        return np.empty((0, len(selected_features(preprocessor))), dtype=np.float32)
    out = apply_steps(transform_steps(preprocessor), columns)
    return np.asarray(out, dtype=np.float32)


def transform_steps(preprocessor: Pipeline) -> list:
    """The steps a fitted chain applies to records: all but the samplers."""
    return [s for _, s in preprocessor.steps if not hasattr(s, "fit_resample")]


def apply_steps(steps: list, columns: Columns):
    """Run ``steps`` (of :func:`transform_steps`) in order on typed columns.

    Returns columns, or the model's matrix once the last step has run.
    """
    out = columns
    for step in steps:
        if hasattr(step, "transform_columns"):
            out = step.transform_columns(out)
        else:
            out = step.transform(pd.DataFrame(out))
            if isinstance(out, pd.DataFrame):
                out = frame_columns(out)
    return out
