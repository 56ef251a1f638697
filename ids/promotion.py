"""Champion against challenger: the shared test split, scoring both, the decision."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ids.catalog import check_task
from ids.data import LoadedDataset
from ids.training import protocol_frame, protocol_split, task_target

logger = logging.getLogger(__name__)

PROMOTION_METRIC = "f1_macro"
SCORE_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted")


@dataclass(frozen=True)
class Decision:
    """Whether the challenger replaces the champion, and why."""

    promote: bool
    reason: str
    metric: str
    challenger: float
    champion: float | None = None


@dataclass
class HeldOutSplit:
    """The typed records of a run's test split and their class names per task."""

    records: pd.DataFrame
    targets: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.records)


def protocol_test_split(loaded: LoadedDataset, seed: int = 0) -> HeldOutSplit:
    """The test split ``train_dataset`` uses for ``loaded`` with the same seed.

    Training deduplicates and splits deterministically, so recomputing the split
    here gives the very rows the winner was tested on; the split is stratified
    by attack type, hence shared by both tasks.
    """
    frame, _, _ = protocol_frame(loaded)
    split = protocol_split(frame, seed)
    records = frame.iloc[split.test].reset_index(drop=True)
    targets = {task: task_target(records, task) for task in ("binary", "multiclass")}
    return HeldOutSplit(records, targets)


def score_detector_on(
    folder: str | os.PathLike, test_records: pd.DataFrame, y_test_names
) -> dict:
    """Scores of the saved detector in ``folder`` on typed test records.

    Returns:
        ``score_predictions``' dict (summary scores, ``per_class``,
        ``confusion``) plus ``classes`` and ``rows``.

    Raises:
        ValueError: The records lack input columns the detector needs.
    """
    from ids.detector import Detector
    from ids.evaluation import score_predictions

    detector = Detector.load(folder)
    missing = [c for c in detector.input_columns if c not in test_records.columns]
    if missing:
        raise ValueError(
            f"detector {detector.tag} in {folder} needs input column(s) {missing} "
            f"that the test records lack (they have {list(test_records.columns)}); "
            "score it on records of its own dataset"
        )
    y_test = np.asarray(y_test_names, dtype=object)
    if len(y_test) != len(test_records):
        raise ValueError(
            f"{len(test_records)} test records but {len(y_test)} class names; "
            "pass one class name per record"
        )

    proba = detector.predict_proba_typed(test_records[detector.input_columns])
    names = np.asarray(detector.classes, dtype=object)
    scores = score_predictions(y_test, names[np.argmax(proba, axis=1)], names)
    scores.update(classes=list(detector.classes), rows=len(y_test))
    return scores


def score_champion_on(
    champion_folder: str | os.PathLike | None, test_records: pd.DataFrame, y_test_names
) -> dict | None:
    """Scores of the serving champion on the challenger's test split.

    Returns None when there is no champion folder. A champion that cannot score
    the records at all (its files are gone, or the schema moved on) also gives
    None, with a warning, so that a working challenger can replace it.
    """
    if champion_folder is None:
        return None
    folder = Path(champion_folder)
    try:
        return score_detector_on(folder, test_records, y_test_names)
    except (FileNotFoundError, ValueError) as exc:
        logger.warning("champion in %s cannot score the test split: %s", folder, exc)
        return None


def decide_promotion(
    challenger_scores: dict,
    champion_scores: dict | None,
    metric: str = PROMOTION_METRIC,
    min_gain: float = 0.0,
) -> Decision:
    """Promote when there is no champion or the challenger is strictly better.

    Both sets of scores must come from the same test split. The challenger must
    beat the champion by more than ``min_gain`` on ``metric``.

    Raises:
        ValueError: ``metric`` is missing from the challenger's scores, or
            ``min_gain`` is negative.
    """
    if metric not in challenger_scores:
        raise ValueError(
            f"metric {metric!r} missing from the challenger's scores (got "
            f"{sorted(challenger_scores)}); pick one of {list(SCORE_KEYS)}"
        )
    if not isinstance(min_gain, int | float) or min_gain < 0:
        raise ValueError(f"min_gain must be a number >= 0, got {min_gain!r}")
    challenger = _number(challenger_scores[metric])

    if math.isnan(challenger):
        return Decision(False, f"challenger has no {metric} (n/a)", metric, challenger)
    if champion_scores is None:
        reason = f"no usable champion; challenger {metric} {challenger:.4f}"
        return Decision(True, reason, metric, challenger)
    champion = _number(champion_scores.get(metric))
    if math.isnan(champion):
        reason = f"champion has no {metric} (n/a); challenger {challenger:.4f}"
        return Decision(True, reason, metric, challenger, champion)
    gain = challenger - champion
    promote = gain > min_gain
    verdict = "beats" if promote else "does not beat"
    reason = (
        f"challenger {metric} {challenger:.4f} {verdict} champion {champion:.4f} "
        f"on the challenger's test split (gain {gain:+.4f}, needed > {min_gain:g})"
    )
    return Decision(promote, reason, metric, challenger, champion)


def summary_scores(scores: dict) -> dict[str, float]:
    """The summary numbers of a scores dict (what a champion pointer records)."""
    return {k: float(scores[k]) for k in SCORE_KEYS if _is_number(scores.get(k))}


def check_tasks(tasks) -> tuple[str, ...]:
    """``tasks`` as a tuple of known task names."""
    if isinstance(tasks, str):
        tasks = (tasks,)
    return tuple(check_task(t) for t in tasks)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value) -> float:
    return float(value) if _is_number(value) else math.nan
