"""The evaluation protocol: dedup, the stratified 60/15/15/10 split, a strict one."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test", "replay")
FRACTIONS = (0.60, 0.15, 0.15, 0.10)


@dataclass
class Split:
    """Row positions of each part of a split, into the deduplicated frame."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    replay: np.ndarray
    kind: str = "stratified"

    def counts(self) -> dict[str, int]:
        return {name: int(len(getattr(self, name))) for name in SPLITS}


def first_occurrences(raw_hash: np.ndarray) -> np.ndarray:
    """True for the first of each set of identical raw rows."""
    return ~pd.Series(raw_hash).duplicated().to_numpy()


def deduplicate(frame: pd.DataFrame, raw_hash: np.ndarray) -> pd.DataFrame:
    """Remove identical raw rows (all columns, as read from the file)."""
    if len(raw_hash) != len(frame):
        raise ValueError(
            f"raw_hash has {len(raw_hash)} entries for {len(frame)} rows; pass the "
            "hashes of the same LoadedDataset"
        )
    duplicate = ~first_occurrences(raw_hash)
    logger.info(
        "dedup: %d rows, %d identical raw rows removed, %d left",
        len(frame),
        int(duplicate.sum()),
        int((~duplicate).sum()),
    )
    return frame.loc[~duplicate].reset_index(drop=True)


def _strata(y: np.ndarray, minimum: int) -> np.ndarray:
    # Classes too small to stratify share one stratum; they still land somewhere.
    values, counts = np.unique(y, return_counts=True)
    rare = set(values[counts < minimum])
    fill = "__rare__"
    if counts[counts < minimum].sum() < minimum:
        fill = values[np.argmax(counts)]
    return np.array([fill if v in rare else v for v in y], dtype=object)


def _split_off(positions: np.ndarray, y: np.ndarray, share: float, seed: int):
    """Split ``share`` of ``positions`` off, stratified; returns (taken, rest)."""
    if share >= 1 or len(positions) < 2:
        return positions, positions[:0]
    strata = _strata(y[positions], minimum=2)
    try:
        return train_test_split(
            positions, train_size=share, random_state=seed, stratify=strata
        )
    except ValueError:
        # Too few rows for every stratum in both parts: fall back to random.
        return train_test_split(positions, train_size=share, random_state=seed)


def stratified_split(y, seed: int = 0, fractions=FRACTIONS) -> Split:
    """The headline split: stratified by class, fixed seed."""
    y = np.asarray(y)
    rest = np.arange(len(y))
    parts = []
    remaining = 1.0
    for share in fractions[:-1]:
        taken, rest = _split_off(rest, y, share / remaining, seed)
        parts.append(taken)
        remaining -= share
    parts.append(rest)
    return Split(*(np.sort(p) for p in parts))


def input_keys(X: pd.DataFrame) -> np.ndarray:
    """One hash per row of the model-input vector."""
    return pd.util.hash_pandas_object(X, index=False).to_numpy()


def grouped_split(X: pd.DataFrame, seed: int = 0, fractions=FRACTIONS) -> Split:
    """The strict split: rows with the same input vector share a part.

    Groups are shuffled and dealt out until each part holds about its share of the
    rows; with few distinct inputs (two in the garage-door file) the parts come
    out uneven, and that is the honest figure.
    """
    keys = input_keys(X)
    groups, inverse = np.unique(keys, return_inverse=True)
    sizes = np.bincount(inverse)
    order = np.random.default_rng(seed).permutation(len(groups))
    bounds = np.cumsum(fractions) * len(keys)
    assigned = np.empty(len(groups), dtype=int)
    filled = 0
    part = 0
    for g in order:
        while part < len(fractions) - 1 and filled >= bounds[part]:
            part += 1
        assigned[g] = part
        filled += sizes[g]
    row_part = assigned[inverse]
    return Split(
        *(np.flatnonzero(row_part == i) for i in range(len(fractions))), kind="grouped"
    )
