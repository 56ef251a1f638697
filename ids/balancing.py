"""SMOTE balancing of the training split, the one resampling step of the chain."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

logger = logging.getLogger(__name__)


class SafeSMOTE(BaseEstimator):
    """SMOTE that copes with tiny classes and keeps category codes real.

    Classes are raised to the median class size (``target="median"``, the
    default: on the network file raising every class to the majority size
    quadruples the training rows and SMOTENC alone took 4.5 minutes here) or to
    the majority size (``"majority"``), capped by ``max_per_class``. A class with
    one row is left as it is, with a warning; ``k_neighbors`` shrinks to fit the
    smallest class sampled. With categorical columns SMOTENC is used, so a
    synthetic row only carries codes that its neighbours have.

    Args:
        categorical: Names of the (encoded) categorical columns.
        target: ``"median"`` or ``"majority"``: the size classes are raised to.
        k_neighbors: Largest neighbour count.
        max_per_class: Cap on a class's size after sampling, ``None`` for none.
        minority_share: Only classes smaller than this share of the target are
            raised.
        seed: Seed of the sampler.
    """

    def __init__(
        self,
        categorical: tuple[str, ...] = (),
        target: str = "median",
        k_neighbors: int = 5,
        max_per_class: int | None = None,
        minority_share: float = 0.5,
        seed: int = 0,
    ):
        self.categorical = categorical
        self.target = target
        self.minority_share = minority_share
        self.k_neighbors = k_neighbors
        self.max_per_class = max_per_class
        self.seed = seed

    def fit_resample(self, X, y):
        from imblearn.over_sampling import SMOTE, SMOTENC

        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of records, got {type(X)!r}")
        y = np.asarray(y)
        classes, counts = np.unique(y, return_counts=True)
        target = counts.max() if self.target == "majority" else int(np.median(counts))
        if self.max_per_class is not None:
            target = min(target, self.max_per_class)
        single = [c for c, n in zip(classes, counts, strict=True) if n == 1]
        if single:
            warnings.warn(
                f"class(es) {single} have a single training row; SMOTE leaves them "
                "as they are",
                UserWarning,
                stacklevel=2,
            )
        # Classes already at half the target or more are left alone: SMOTENC's
        # neighbour search over a large class costs far more than the few rows it
        # would add are worth.
        strategy = {
            c: int(target)
            for c, n in zip(classes, counts, strict=True)
            if 1 < n < target * self.minority_share
        }
        self.sampling_strategy_ = strategy
        if not strategy:
            return X, y
        smallest = min(counts[np.isin(classes, list(strategy))])
        k = max(1, min(self.k_neighbors, smallest - 1))
        cat_idx = [X.columns.get_loc(c) for c in self.categorical if c in X.columns]
        if cat_idx and len(cat_idx) < X.shape[1]:
            sampler = SMOTENC(
                categorical_features=cat_idx,
                sampling_strategy=strategy,
                k_neighbors=k,
                random_state=self.seed,
            )
        else:
            sampler = SMOTE(
                sampling_strategy=strategy, k_neighbors=k, random_state=self.seed
            )
        # Neighbours are searched within each class, so only the rows of the
        # classes being raised need to go through the sampler (SMOTENC one-hot
        # encodes everything it is given: on the whole network split that cost
        # minutes); its new rows are the tail of what it returns.
        chosen = np.isin(y, list(strategy))
        # The sampler wants two classes; a few rows of another one come along
        # and get no new rows.
        chosen[np.flatnonzero(~chosen)[:20]] = True
        X_part, y_part = X.loc[chosen], y[chosen]
        X_res, y_res = sampler.fit_resample(X_part, y_part)
        synthetic = pd.DataFrame(np.asarray(X_res)[len(X_part) :], columns=X.columns)
        X_out = pd.concat([X.reset_index(drop=True), synthetic], ignore_index=True)
        y_out = np.concatenate([y, np.asarray(y_res)[len(y_part) :]])
        logger.info("SMOTE: %d rows -> %d (k_neighbors=%d)", len(X), len(X_out), k)
        return X_out.astype(np.float64), y_out

    def fit(self, X, y):
        self.fit_resample(X, y)
        return self
