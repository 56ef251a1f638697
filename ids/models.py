"""Candidate models: the paper's SimpleRNN-Dense-GRU hybrid, an LSTM, ML baselines.

Every candidate takes the preprocessed float matrix and integer class codes over
the task's fixed vocabulary, and its ``predict_proba`` has one column per code
it was fitted with (``classes_``); :func:`expand_proba` widens that to the whole
vocabulary. TensorFlow is imported only when a Keras model is built or loaded.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

logger = logging.getLogger(__name__)

KERAS_MODELS = ("rnn_gru", "lstm")
BASELINES = ("lr", "lda", "nb", "svm", "dt", "rf", "knn", "hgb")
MODELS = KERAS_MODELS + BASELINES
OPTIMIZERS = ("adam", "adamax")
# The paper's own model and the figure the paper reports sit beside the baselines.
PAPER_MODEL = "rnn_gru"
# Direct calls beat model.predict below this batch size (~35 ms per predict call).
_DIRECT_CALL_ROWS = 8192


class KerasSequenceClassifier(ClassifierMixin, BaseEstimator):
    """A Keras recurrent classifier over inputs shaped (n, 1, features).

    Args:
        architecture: ``"rnn_gru"`` (SimpleRNN with return_sequences, Dense ReLU,
            GRU with one softmax unit per class) or ``"lstm"``.
        optimizer: ``"adam"`` or ``"adamax"``.
        n_classes: Size of the output layer (the fixed vocabulary).
        units: Width of the recurrent and dense layers.
        epochs: Most epochs; early stopping on validation loss may stop sooner.
        batch_size: Mini-batch size (recorded in the training config).
        learning_rate: Optimizer step size.
        patience: Epochs without validation improvement before stopping.
        seed: Seed of weights and shuffling.
    """

    def __init__(
        self,
        architecture: str = "rnn_gru",
        optimizer: str = "adam",
        n_classes: int = 10,
        units: int = 64,
        epochs: int = 10,
        batch_size: int = 512,
        learning_rate: float = 5e-3,
        patience: int = 2,
        seed: int = 0,
    ):
        self.architecture = architecture
        self.optimizer = optimizer
        self.n_classes = n_classes
        self.units = units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.seed = seed

    def _build(self, n_features: int):
        import keras

        if self.architecture not in KERAS_MODELS:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; expected {KERAS_MODELS}"
            )
        layers = keras.layers
        if self.architecture == "rnn_gru":
            body = [
                layers.SimpleRNN(self.units, return_sequences=True),
                layers.Dense(self.units, activation="relu"),
                layers.GRU(self.n_classes, activation="softmax"),
            ]
        else:
            body = [
                layers.LSTM(self.units),
                layers.Dense(self.n_classes, activation="softmax"),
            ]
        model = keras.Sequential([keras.Input((1, n_features)), *body])
        optimizers = {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax}
        if self.optimizer not in optimizers:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; expected {OPTIMIZERS}"
            )
        model.compile(
            optimizer=optimizers[self.optimizer](learning_rate=self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, X, y, validation_data=None):
        import keras

        keras.utils.set_random_seed(self.seed)
        X = _sequence(X)
        self.model_ = self._build(X.shape[-1])
        callbacks = []
        validation = None
        if validation_data is not None and len(validation_data[0]):
            validation = (_sequence(validation_data[0]), np.asarray(validation_data[1]))
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    patience=self.patience, restore_best_weights=True
                )
            )
        started = time.perf_counter()
        history = self.model_.fit(
            X,
            np.asarray(y),
            epochs=self.epochs,
            batch_size=self.batch_size,
            validation_data=validation,
            callbacks=callbacks,
            verbose=0,
        )
        self.history_ = {
            k: [float(v) for v in vals] for k, vals in history.history.items()
        }
        self.epochs_run_ = len(history.history["loss"])
        self.classes_ = np.arange(self.n_classes)
        logger.info(
            "%s/%s: %d epochs in %.1f s",
            self.architecture,
            self.optimizer,
            self.epochs_run_,
            time.perf_counter() - started,
        )
        return self

    def predict_proba(self, X):
        X = _sequence(X)
        if len(X) <= _DIRECT_CALL_ROWS:
            proba = np.asarray(self.model_(X, training=False), dtype=np.float64)
        else:
            proba = self.model_.predict(X, batch_size=_DIRECT_CALL_ROWS, verbose=0)
        # A GRU output layer mixes its softmax candidate with the update gate, so
        # its rows need not sum to one.
        total = proba.sum(axis=1, keepdims=True)
        return np.divide(
            proba, total, out=np.full_like(proba, 1 / proba.shape[1]), where=total > 0
        )

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __getstate__(self):
        # The Keras model is saved in its own format beside the pickle.
        state = self.__dict__.copy()
        state.pop("model_", None)
        return state


def _sequence(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X.reshape(len(X), 1, -1) if X.ndim == 2 else X


def build_model(
    name: str,
    *,
    optimizer: str | None = None,
    n_classes: int = 10,
    epochs: int = 10,
    batch_size: int = 512,
    seed: int = 0,
):
    """An unfitted candidate called ``name`` (see :data:`MODELS`)."""
    if name in KERAS_MODELS:
        return KerasSequenceClassifier(
            name,
            optimizer or "adam",
            n_classes=n_classes,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
        )
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    factories = {
        "lr": lambda: LogisticRegression(max_iter=200, tol=1e-3),
        "lda": lambda: LinearDiscriminantAnalysis(),
        "nb": lambda: GaussianNB(),
        # LinearSVC has no probabilities; sigmoid calibration gives them.
        "svm": lambda: CalibratedClassifierCV(LinearSVC(), cv=3),
        "dt": lambda: DecisionTreeClassifier(random_state=seed),
        "rf": lambda: RandomForestClassifier(
            n_estimators=100, n_jobs=-1, random_state=seed
        ),
        "knn": lambda: KNeighborsClassifier(n_neighbors=5, n_jobs=-1),
        "hgb": lambda: HistGradientBoostingClassifier(
            max_iter=100, early_stopping=True, random_state=seed
        ),
    }
    if name not in factories:
        raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")
    return factories[name]()


def fit_model(model, X, y, validation_data=None):
    """Fit a candidate; only Keras models use the validation rows."""
    if isinstance(model, KerasSequenceClassifier):
        return model.fit(X, y, validation_data=validation_data)
    return model.fit(X, y)


def model_proba(model, X: np.ndarray) -> np.ndarray:
    """``model.predict_proba(X)``, without per-call overhead for tree models.

    On a few rows a random forest spends its time in joblib and per-tree input
    checks, not in the trees (one record, 100 trees, measured here: 23 ms with
    n_jobs=-1, 7.8 ms with n_jobs=1, 0.4 ms here). A tree's ``predict_proba``
    is its ``tree_.predict`` cut to ``n_classes_`` columns once the input is
    checked, and a forest's is the mean of those, summed tree by tree: this
    does the same sums in the same order, so the result is identical to
    ``n_jobs=1`` (threads change scikit-learn's own order, and the last bit,
    from run to run). ``X`` must be the preprocessor's float32 C-contiguous
    matrix of the fitted width; anything else goes to ``predict_proba``.
    """
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

    checked = (
        isinstance(X, np.ndarray)
        and X.dtype == np.float32
        and X.ndim == 2
        and X.flags.c_contiguous
        and X.shape[1] == getattr(model, "n_features_in_", -1)
    )
    if checked and type(model) in (DecisionTreeClassifier, ExtraTreeClassifier):
        if model.n_outputs_ == 1:
            return model.tree_.predict(X)[:, : model.n_classes_]
    if checked and type(model) in (RandomForestClassifier, ExtraTreesClassifier):
        if model.n_outputs_ == 1:
            total = np.zeros((len(X), model.n_classes_))
            for tree in model.estimators_:
                total += tree.tree_.predict(X)[:, : model.n_classes_]
            total /= len(model.estimators_)
            return total
    return model.predict_proba(X)


def expand_proba(proba: np.ndarray, fitted_codes, n_classes: int) -> np.ndarray:
    """Place a model's probability columns into the full vocabulary's columns."""
    proba = np.asarray(proba, dtype=np.float64)
    codes = np.asarray(fitted_codes, dtype=int)
    if proba.shape[1] == n_classes and np.array_equal(codes, np.arange(n_classes)):
        return proba
    out = np.zeros((len(proba), n_classes))
    out[:, codes] = proba
    return out


def save_keras(model: KerasSequenceClassifier, path) -> None:
    """Write the Keras network of ``model`` to ``path`` (``.keras``)."""
    model.model_.save(path)


def load_keras(model: KerasSequenceClassifier, path) -> KerasSequenceClassifier:
    """Attach the network saved at ``path`` to an unpickled ``model``."""
    import keras

    model.model_ = keras.models.load_model(path, compile=False)
    return model
