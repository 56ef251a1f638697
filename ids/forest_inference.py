"""Small-batch inference for scikit-learn forests through treelite.

scikit-learn walks a forest one tree at a time from Python: for a single
record that is ~4 µs of call overhead per tree, ~0.4-1.3 ms for a forest of
100 trees, most of a served request. treelite's GTIL walks every tree in one
call into compiled code. Only the walk is delegated: GTIL reports the leaf
each record reaches in each tree, and the probabilities are then read from
the model's own ``tree_.value`` and summed tree by tree, in the order
:func:`ids.models.model_proba` sums them, so the result is bit-identical
(GTIL's own probabilities differ from scikit-learn's in the last bit for
some records, measured on network champions).

GTIL costs ~20 µs per record walked, scikit-learn's ``apply`` ~6 µs once
its per-tree overhead is paid, so batches over :data:`MAX_ROWS` records stay
with :func:`ids.models.model_proba`; so do lone trees, whose single
scikit-learn call (~10 µs) is cheaper than this path (~34 µs).

The walk goes through treelite's C API (``TreeliteGTILPredict``) with a
configuration parsed once: ``treelite.gtil.predict_leaf`` parses a JSON
configuration and queries the model's types on every call, ~100 µs of a
~110 µs single-record call here; the C call itself takes ~11 µs.
"""

from __future__ import annotations

import ctypes
import logging

import numpy as np

logger = logging.getLogger(__name__)

# Measured on network champions (two forests of 100 trees): GTIL is ahead up
# to ~32 records per request, behind from ~64.
MAX_ROWS = 32


class LeafLookup:
    """The leaves of a fitted forest found by treelite.

    Args:
        model: A fitted single-output ``RandomForestClassifier`` or
            ``ExtraTreesClassifier``.
    """

    def __init__(self, model):
        import treelite
        import treelite.gtil
        from treelite.gtil.gtil import GTILConfig

        self.model = model
        self.trees = list(model.estimators_)
        self._treelite = treelite.sklearn.import_model(model)
        types = (self._treelite.input_type, self._treelite.output_type)
        if types != ("float64", "float64"):
            raise ValueError(f"treelite model has input/output types {types}")
        self._config = GTILConfig(predict_type="leaf_id", nthread=1)
        # The C call writes into a buffer sized here: check the shape first.
        probe = np.zeros((1, model.n_features_in_))
        shape = treelite.gtil.predict_leaf(self._treelite, probe, nthread=1).shape
        if shape != (1, len(self.trees)):
            raise ValueError(f"treelite reports leaves of shape {shape} for one row")
        values = [t.tree_.value[:, 0, : model.n_classes_] for t in self.trees]
        # Node ``i`` of tree ``t`` is row ``offsets[t] + i`` of ``values``.
        self._offsets = np.cumsum([0] + [len(v) for v in values[:-1]])
        self._values = np.concatenate(values)

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """Leaf index of each record (rows) in each tree (columns).

        ``X`` is the float32 model input; widened to float64 it compares with
        the thresholds exactly as scikit-learn's float32 input does.
        """
        from treelite.core import _LIB, _check_call

        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.model.n_features_in_:
            # The C call reads n_features_in_ values per row: never fewer.
            raise ValueError(
                f"model input of shape {X.shape}; the forest takes "
                f"{self.model.n_features_in_} features per row"
            )
        found = np.empty((len(X), len(self.trees)), dtype=np.float64)
        pointer = ctypes.POINTER(ctypes.c_double)
        _check_call(
            _LIB.TreeliteGTILPredict(
                self._treelite.handle,
                X.ctypes.data_as(pointer),
                b"float64",
                ctypes.c_uint64(len(X)),
                found.ctypes.data_as(pointer),
                self._config.handle,
            )
        )
        return found.astype(np.intp)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, equal to :func:`ids.models.model_proba`'s."""
        per_tree = self._values[self.leaves(X) + self._offsets]
        # A sum over the middle axis adds the trees in order, one at a time.
        total = per_tree.sum(axis=1)
        total /= len(self.trees)
        return total

    def agrees(self, X: np.ndarray) -> bool:
        """Whether treelite finds scikit-learn's leaves for every row of ``X``."""
        expected = np.stack([tree.apply(X) for tree in self.trees], axis=1)
        return np.array_equal(self.leaves(X), expected)


def covers(model) -> bool:
    """Whether ``model`` is a forest that :class:`LeafLookup` can walk."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    kinds = (RandomForestClassifier, ExtraTreesClassifier)
    return type(model) in kinds and getattr(model, "n_outputs_", 0) == 1


def leaf_lookup(model, check: np.ndarray) -> LeafLookup | None:
    """A :class:`LeafLookup` for ``model`` if treelite walks it as scikit-learn does.

    ``check`` holds model inputs (training reference rows) on which every
    leaf must agree; otherwise, or for another kind of model, None, and the
    model predicts through :func:`ids.models.model_proba` alone.
    """
    if not covers(model) or not len(check):
        return None
    try:
        lookup = LeafLookup(model)
        if lookup.agrees(check):
            return lookup
        logger.warning(
            "treelite walks %s differently from scikit-learn on reference rows; "
            "small batches use scikit-learn",
            type(model).__name__,
        )
    except Exception:  # an import or walk failure must not stop serving
        logger.exception("treelite cannot load %s", type(model).__name__)
    return None
