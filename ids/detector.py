"""The saved form of a trained detector, used by every later part of the product.

A detector folder holds ``detector.json`` (dataset, task, classes, input and
model feature lists, metrics, data fingerprint, training config),
``preprocessor.joblib``, the model (``model.joblib`` and, for Keras, also
``model.keras``) and ``reference.parquet`` (cleaned training rows for drift).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from ids.catalog import get_spec
from ids.data import RecordError, normalize_records
from ids.features import selected_features, transform_records
from ids.models import (
    KerasSequenceClassifier,
    expand_proba,
    load_keras,
    model_proba,
    save_keras,
)

logger = logging.getLogger(__name__)

METADATA = "detector.json"
REFERENCE_ROWS = 50_000
FORMAT_VERSION = 1


@dataclass
class Detector:
    """A fitted preprocessor and model that score raw records of one dataset."""

    dataset: str
    task: str
    classes: tuple[str, ...]
    input_columns: list[str]
    preprocessor: object
    model: object
    model_name: str
    optimizer: str | None = None
    metrics: dict = field(default_factory=dict)
    fingerprint: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    reference: pd.DataFrame | None = None

    @property
    def features(self) -> list[str]:
        """Columns the model sees after preprocessing, in input order."""
        return selected_features(self.preprocessor)

    @property
    def tag(self) -> str:
        suffix = f"-{self.optimizer}" if self.optimizer else ""
        return f"{self.dataset}-{self.task}-{self.model_name}{suffix}"

    def prepare(self, records) -> pd.DataFrame:
        """Normalise raw records (a frame or a list of dicts) into model inputs.

        Fields are taken by name; extra fields are ignored.
        """
        if isinstance(records, list | tuple):
            if not records:
                raise RecordError(f"{self.dataset}: no records to score")
            records = pd.DataFrame.from_records(records)
        if not isinstance(records, pd.DataFrame):
            raise TypeError(
                f"records must be a DataFrame or a list of dicts, got {type(records)!r}"
            )
        typed = normalize_records(records, get_spec(self.dataset))
        return typed[self.input_columns]

    def predict_proba_typed(self, typed: pd.DataFrame) -> np.ndarray:
        """Class probabilities of already-normalised records."""
        X = transform_records(self.preprocessor, typed)
        proba = model_proba(self.model, X)
        return expand_proba(proba, self.model.classes_, len(self.classes))

    def predict_proba(self, records) -> np.ndarray:
        """Probabilities over :attr:`classes`, one row per raw record."""
        return self.predict_proba_typed(self.prepare(records))

    def predict(self, records) -> np.ndarray:
        """The most likely class name of each raw record."""
        proba = self.predict_proba(records)
        return np.asarray(self.classes, dtype=object)[np.argmax(proba, axis=1)]

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the detector into a new folder; an existing one is never replaced."""
        folder = Path(folder)
        if folder.exists():
            raise FileExistsError(
                f"{folder} already exists; a trained detector is never written over. "
                "Choose a new folder (training runs get a timestamped one)."
            )
        staging = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        joblib.dump(self.preprocessor, staging / "preprocessor.joblib")
        joblib.dump(self.model, staging / "model.joblib")
        if isinstance(self.model, KerasSequenceClassifier):
            save_keras(self.model, staging / "model.keras")
        if self.reference is not None:
            self.reference.to_parquet(staging / "reference.parquet", index=False)
        (staging / METADATA).write_text(json.dumps(self._metadata(), indent=2))
        os.replace(staging, folder)
        logger.info("saved detector %s to %s", self.tag, folder)
        return folder

    def _metadata(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "tag": self.tag,
            "dataset": self.dataset,
            "task": self.task,
            "classes": list(self.classes),
            "input_columns": self.input_columns,
            "features": self.features,
            "model": self.model_name,
            "optimizer": self.optimizer,
            "keras": isinstance(self.model, KerasSequenceClassifier),
            "metrics": _jsonable(self.metrics),
            "fingerprint": self.fingerprint,
            "config": _jsonable(self.config),
            "reference_rows": 0 if self.reference is None else len(self.reference),
        }

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Detector:
        """Read a detector folder written by :meth:`save`."""
        folder = Path(folder)
        meta_path = folder / METADATA
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{folder} is not a detector folder: {METADATA} is missing"
            )
        meta = json.loads(meta_path.read_text())
        model = joblib.load(folder / "model.joblib")
        if meta.get("keras"):
            load_keras(model, folder / "model.keras")
        reference_path = folder / "reference.parquet"
        reference = (
            pd.read_parquet(reference_path) if reference_path.is_file() else None
        )
        return cls(
            dataset=meta["dataset"],
            task=meta["task"],
            classes=tuple(meta["classes"]),
            input_columns=meta["input_columns"],
            preprocessor=joblib.load(folder / "preprocessor.joblib"),
            model=model,
            model_name=meta["model"],
            optimizer=meta.get("optimizer"),
            metrics=meta.get("metrics", {}),
            fingerprint=meta.get("fingerprint", {}),
            config=meta.get("config", {}),
            reference=reference,
        )


def read_metadata(folder: str | os.PathLike) -> dict:
    """The ``detector.json`` of a folder, without loading any model."""
    return json.loads((Path(folder) / METADATA).read_text())


def reference_sample(typed: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Up to 50,000 training rows (already free of identical raw rows) for drift.

    Rows with the same model inputs are kept: live traffic repeats scans and
    floods too, and a reference of distinct vectors alone made every stable
    replay window drift (share 0.24-0.29 against 0.00).
    """
    if len(typed) > REFERENCE_ROWS:
        typed = typed.sample(REFERENCE_ROWS, random_state=seed)
    return typed.reset_index(drop=True)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
