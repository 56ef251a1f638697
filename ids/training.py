"""Training runs: protocol split, shared preprocessing, every candidate, the report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ids.catalog import check_task, get_spec
from ids.data import LoadedDataset, input_columns, load_dataset
from ids.detector import Detector, reference_sample
from ids.features import build_preprocessor, fit_preprocessor, transform_records
from ids.models import (
    KERAS_MODELS,
    MODELS,
    OPTIMIZERS,
    PAPER_MODEL,
    build_model,
    fit_model,
)
from ids.settings import runs_dir
from ids.splits import Split, first_occurrences, grouped_split, stratified_split

logger = logging.getLogger(__name__)


STRICT_MODELS = ("rf", "dt", "lr", "lda", "nb")


@dataclass
class TrainingConfig:
    """What bounds and shapes a training run; recorded with every detector."""

    models: tuple[str, ...] = MODELS
    optimizers: tuple[str, ...] = OPTIMIZERS
    epochs: int = 10
    batch_size: int = 512
    max_rows: int | None = None
    seed: int = 0
    strict: bool = True
    # Candidates that also get the strict (grouped) figure; None means all. The
    # default keeps the cheap ones (the random forest is the reference figure):
    # a strict fit of every candidate doubles a run's cost.
    strict_models: tuple[str, ...] | None = STRICT_MODELS
    # Baselines whose cost grows fastest with rows train on a stratified sample
    # of at most this many (resampled) training rows; None trains on all.
    slow_model_rows: int | None = 30_000
    smote_max_per_class: int | None = None
    audit_threshold: float = 0.99

    def candidates(self) -> list[tuple[str, str | None]]:
        """(model, optimizer) pairs: Keras models once per optimizer."""
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; expected some of {MODELS}")
        bad = [o for o in self.optimizers if o not in OPTIMIZERS]
        if bad:
            raise ValueError(f"unknown optimizer(s) {bad}; expected {OPTIMIZERS}")
        pairs = []
        for model in self.models:
            if model == PAPER_MODEL:
                pairs.extend((model, opt) for opt in self.optimizers)
            elif model in KERAS_MODELS:
                # The LSTM baseline runs once, with the first optimizer.
                pairs.append((model, self.optimizers[0]))
            else:
                pairs.append((model, None))
        return pairs


@dataclass
class RunResult:
    """What one run of one dataset and task produced."""

    dataset: str
    task: str
    folder: Path
    rows: list[dict]
    detectors: dict[str, Path]
    split_counts: dict[str, int]
    leakage: object = None
    best: str | None = None
    seconds: float = 0.0
    dedup: dict = field(default_factory=dict)


def task_target(frame: pd.DataFrame, task: str) -> np.ndarray:
    """Class names of ``task`` for each row."""
    check_task(task)
    if task == "binary":
        return np.where(frame["label"].to_numpy() == 1, "attack", "normal").astype(
            object
        )
    return frame["type"].to_numpy().astype(object)


def protocol_frame(loaded: LoadedDataset) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Records and formats with identical raw rows removed, and the counts."""
    keep = first_occurrences(loaded.raw_hash)
    counts = {
        "rows": len(keep),
        "identical_raw_rows_removed": int((~keep).sum()),
        "rows_left": int(keep.sum()),
    }
    logger.info(
        "%s: %d rows, %d identical raw rows removed before splitting",
        loaded.name,
        counts["rows"],
        counts["identical_raw_rows_removed"],
    )
    formats = loaded.formats if loaded.formats is not None else pd.DataFrame()
    return (
        loaded.records.loc[keep].reset_index(drop=True),
        formats.loc[keep].reset_index(drop=True),
        counts,
    )


def protocol_split(frame: pd.DataFrame, seed: int = 0) -> Split:
    """The headline 60/15/15/10 split, stratified by attack type."""
    return stratified_split(frame["type"].to_numpy(), seed)


def train_dataset(
    name: str,
    task: str,
    config: TrainingConfig | None = None,
    *,
    data_dir=None,
    out_dir=None,
    extra: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
    loaded: LoadedDataset | None = None,
) -> RunResult:
    """Train and evaluate every candidate of ``config`` on one dataset and task.

    Args:
        name: Catalog name of the dataset.
        task: ``"binary"`` or ``"multiclass"``.
        config: Candidates and cost bounds; defaults to the full set.
        data_dir: Data folder (else ``$IDS_DATA_DIR``).
        out_dir: Where the run folder goes (else the project's runs folder).
        extra: Newly labeled typed records (same columns as the loaded records)
            appended to the base file before dedup and splitting.
        progress: Called with a short line as each candidate starts.
        loaded: The dataset already read (e.g. shared by both tasks of one
            nightly branch); ``data_dir`` and ``config.max_rows`` are then unused.
    """
    from ids.audit import audit_leakage
    from ids.evaluation import ceiling_reference, majority_reference, write_results

    config = config or TrainingConfig()
    check_task(task)
    spec = get_spec(name)
    candidates = config.candidates()
    started = time.perf_counter()
    if loaded is None:
        loaded = load_dataset(name, data_dir, config.max_rows)
    if extra is not None and len(extra):
        loaded = with_extra(loaded, extra)
    frame, formats, dedup = protocol_frame(loaded)
    split = protocol_split(frame, config.seed)
    logger.info("%s: split %s", name, split.counts())
    columns = input_columns(spec)
    X, y = frame[columns], task_target(frame, task)
    classes = spec.classes(task)

    folder = _new_run_folder(out_dir, name, task)
    leakage = audit_leakage(
        X.iloc[split.train],
        pd.Series(frame["label"].to_numpy()[split.train]),
        formats.iloc[split.train] if len(formats.columns) else None,
        config.audit_threshold,
        config.seed,
    )
    (folder / "leakage.md").write_text(leakage.to_markdown())

    prepared = _prepare(spec, config, X, y, classes, split)
    strict = (
        _prepare_strict(spec, config, X, y, classes, prepared)
        if config.strict
        else None
    )
    reference = reference_sample(X.iloc[split.train], config.seed)
    y_test = y[split.test]
    majority = majority_reference(y[split.train], y_test, classes)
    ceiling = ceiling_reference(prepared["X_test_typed"], y_test, classes)

    rows, detectors = [], {}
    for position, (model_name, optimizer) in enumerate(candidates, 1):
        label = f"{model_name}" + (f"/{optimizer}" if optimizer else "")
        line = f"[{position}/{len(candidates)}] {name} {task}: {label}"
        logger.info(line)
        if progress:
            progress(line)
        row, detector = _train_candidate(
            spec, task, classes, config, model_name, optimizer, prepared, strict, folder
        )
        row.update(
            majority_accuracy=majority["accuracy"],
            majority_f1_macro=majority["f1_macro"],
            ceiling_accuracy=ceiling["accuracy"],
            ceiling_f1_macro=ceiling["f1_macro"],
            distinct_test_inputs=ceiling.get("distinct_inputs"),
            paper_accuracy=spec.paper_accuracy.get(task),
        )
        detector.metrics.update(row)
        detector.fingerprint = loaded.fingerprint
        detector.config = _config_dict(config, dedup, split)
        detector.reference = reference
        detectors[detector.tag] = detector.save(folder / "detectors" / detector.tag)
        rows.append(row)

    best = max(rows, key=lambda r: r["val_f1_macro"])["tag"] if rows else None
    write_results(rows, folder, "results")
    result = RunResult(
        name,
        task,
        folder,
        rows,
        detectors,
        split.counts(),
        leakage,
        best,
        time.perf_counter() - started,
        dedup,
    )
    logger.info("%s %s: best %s, run folder %s", name, task, best, folder)
    return result


def with_extra(loaded: LoadedDataset, extra: pd.DataFrame) -> LoadedDataset:
    """``loaded`` with newly labeled typed records appended (not deduplicated)."""
    extra = extra.reindex(columns=loaded.records.columns)
    records = pd.concat([loaded.records, extra], ignore_index=True)
    hashes = pd.util.hash_pandas_object(extra.astype(str), index=False).to_numpy()
    formats = None
    if loaded.formats is not None:
        formats = pd.concat(
            [loaded.formats, pd.DataFrame(index=range(len(extra)))], ignore_index=True
        ).fillna("n/a")
    logger.info("%s: %d newly labeled rows added", loaded.name, len(extra))
    return LoadedDataset(
        loaded.name,
        records,
        loaded.release,
        loaded.rows_read + len(extra),
        loaded.rows_dropped,
        loaded.fingerprint,
        np.concatenate([loaded.raw_hash, hashes]),
        formats,
    )


def _codes(y: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in y], dtype=np.int64)


def _prepare(spec, config, X, y, classes, split: Split) -> dict:
    preprocessor = build_preprocessor(
        spec,
        audit_threshold=config.audit_threshold,
        smote_max_per_class=config.smote_max_per_class,
        seed=config.seed,
    )
    fitted, X_train, y_train = fit_preprocessor(
        preprocessor, X.iloc[split.train], y[split.train]
    )
    return {
        "preprocessor": fitted,
        "X_train": X_train,
        "y_train": _codes(y_train, classes),
        "rows_train": len(split.train),
        "X_val": transform_records(fitted, X.iloc[split.validation]),
        "y_val": _codes(y[split.validation], classes),
        "X_test": transform_records(fitted, X.iloc[split.test]),
        "X_test_typed": X.iloc[split.test],
        "y_test": y[split.test],
        "split": split,
    }


def _prepare_strict(spec, config, X, y, classes, headline: dict) -> dict:
    # Group by the vector the model would see: the input columns the audit keeps.
    dropped = headline["preprocessor"].named_steps["leakage"].drop_columns_
    grouped = grouped_split(X.drop(columns=dropped), config.seed)
    logger.info("strict split (grouped by input vector): %s", grouped.counts())
    if min(len(grouped.train), len(grouped.test)) == 0:
        return {"skipped": "too few distinct input vectors for a grouped split"}
    return _prepare(spec, config, X, y, classes, grouped)


def _train_candidate(
    spec, task, classes, config, model_name, optimizer, prepared, strict, folder
) -> tuple[dict, Detector]:
    from ids.evaluation import plot_confusion, score_predictions

    names = np.asarray(classes, dtype=object)
    model, train_seconds, rows_fitted = _fit_candidate(
        model_name, optimizer, classes, config, prepared
    )
    detector = Detector(
        spec.name,
        task,
        classes,
        list(prepared["X_test_typed"].columns),
        prepared["preprocessor"],
        model,
        model_name,
        optimizer,
    )
    val_pred = names[np.argmax(_proba(model, prepared["X_val"], classes), axis=1)]
    val_scores = score_predictions(names[prepared["y_val"]], val_pred, classes)
    test_pred = names[np.argmax(_proba(model, prepared["X_test"], classes), axis=1)]
    scores = score_predictions(prepared["y_test"], test_pred, classes)
    png = folder / "confusion" / f"{detector.tag}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    plot_confusion(prepared["y_test"], test_pred, classes, png, detector.tag)
    row = {
        "dataset": spec.name,
        "task": task,
        "model": model_name,
        "optimizer": optimizer,
        "tag": detector.tag,
        **{
            k: scores[k]
            for k in (
                "accuracy",
                "precision_macro",
                "recall_macro",
                "f1_macro",
                "f1_weighted",
            )
        },
        "per_class": scores["per_class"],
        "val_f1_macro": val_scores["f1_macro"],
        "f1_macro_strict": _strict_score(
            model_name, optimizer, classes, config, strict
        ),
        "train_seconds": round(train_seconds, 3),
        "rows_train": prepared["rows_train"],
        "rows_train_resampled": len(prepared["y_train"]),
        "rows_fitted": rows_fitted,
        "rows_test": len(prepared["y_test"]),
        "epochs_run": getattr(model, "epochs_run_", None),
        "batch_size": config.batch_size if model_name in KERAS_MODELS else None,
        "confusion_png": str(png.relative_to(folder)),
    }
    return row, detector


SLOW_MODELS = ("lr", "svm", "knn")


def _fit_candidate(model_name, optimizer, classes, config, prepared):
    """Build and fit one candidate; returns it, its seconds and rows fitted."""
    from ids.features import stratified_positions

    model = build_model(
        model_name,
        optimizer=optimizer,
        n_classes=len(classes),
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    X, y = prepared["X_train"], prepared["y_train"]
    if model_name in SLOW_MODELS and config.slow_model_rows:
        rows = stratified_positions(y, config.slow_model_rows, config.seed)
        X, y = X[rows], y[rows]
    tick = time.perf_counter()
    fit_model(model, X, y, (prepared["X_val"], prepared["y_val"]))
    return model, time.perf_counter() - tick, len(y)


def _proba(model, X, classes) -> np.ndarray:
    from ids.models import expand_proba

    return expand_proba(model.predict_proba(X), model.classes_, len(classes))


def _strict_score(model_name, optimizer, classes, config, strict) -> float | None:
    from ids.evaluation import score_predictions

    if not strict or "skipped" in strict:
        return None
    if config.strict_models is not None and model_name not in config.strict_models:
        return None
    names = np.asarray(classes, dtype=object)
    try:
        model, _, _ = _fit_candidate(model_name, optimizer, classes, config, strict)
    except (ValueError, IndexError, np.linalg.LinAlgError) as exc:
        # A grouped split can leave training with one input vector (garage door):
        # some models cannot be fitted there, and no strict figure exists.
        logger.warning("strict %s/%s not fitted: %s", model_name, optimizer, exc)
        return None
    pred = names[np.argmax(_proba(model, strict["X_test"], classes), axis=1)]
    return score_predictions(strict["y_test"], pred, classes)["f1_macro"]


def _config_dict(config: TrainingConfig, dedup: dict, split: Split) -> dict:
    return {
        **{k: getattr(config, k) for k in config.__dataclass_fields__},
        "protocol": "dedup identical raw rows, stratified 60/15/15/10 split",
        "dedup": dedup,
        "split": split.counts(),
    }


def _new_run_folder(out_dir, name: str, task: str) -> Path:
    root = Path(out_dir) if out_dir else runs_dir()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = root / f"{name}-{task}-{stamp}"
    folder.mkdir(parents=True)
    return folder


def train_many(
    names: Iterable[str], tasks: Iterable[str], config: TrainingConfig, **kwargs
) -> list[RunResult]:
    """Train every dataset and task in turn."""
    return [train_dataset(n, t, config, **kwargs) for n in names for t in tasks]
