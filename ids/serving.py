"""Scoring with the champions: request checks, both tasks, logging.

The BentoML service and the offline scorer both call :class:`Scorer`. Raw
records are checked and typed column by column (:func:`typed_columns`), then
each champion's saved preprocessor runs through
``ids.features.apply_steps``, the step loop training and evaluation use. A
forest champion walks requests of up to 32 records through treelite
(``ids.forest_inference``), with scikit-learn's probabilities bit for bit.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ids import registry
from ids.catalog import CATALOG, TASKS, get_spec
from ids.data import RecordError, input_columns
from ids.features import (
    apply_steps,
    frame_columns,
    transform_records,
    transform_steps,
)
from ids.forest_inference import MAX_ROWS as MAX_LOOKUP_ROWS
from ids.forest_inference import LeafLookup, covers, leaf_lookup
from ids.scoring_input import (
    ScoringError,
    check_members,
    check_request,
    typed_columns,
)

__all__ = ["Scorer", "ScoringError", "check_request", "typed_columns"]

logger = logging.getLogger(__name__)

# Reference rows on which treelite must find scikit-learn's leaves.
CHECK_ROWS = 2000


@dataclass
class Champion:
    """One loaded champion: its registry tag, detector and preprocessing steps."""

    tag: str
    detector: object
    steps: list = field(init=False, repr=False)
    # Forests: treelite's walk for small batches (ids.forest_inference).
    leaves: LeafLookup | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.steps = transform_steps(self.detector.preprocessor)
        self.leaves = None
        reference = self.detector.reference
        if covers(self.detector.model) and reference is not None and len(reference):
            try:
                check = reference[self.detector.input_columns].head(CHECK_ROWS)
                X = transform_records(self.detector.preprocessor, check)
            except Exception:  # the champion still serves, through scikit-learn
                logger.exception("%s: reference rows for the leaf check fail", self.tag)
                return
            self.leaves = leaf_lookup(self.detector.model, X)

    def proba(self, typed: dict[str, object], done: int = 0) -> np.ndarray:
        """Class probabilities of typed records given as columns.

        The saved preprocessor's steps run through ``ids.features.apply_steps``,
        the code that produced the model's training, validation and test
        inputs; ``done`` steps have already been applied to ``typed``.
        """
        from ids.models import expand_proba, model_proba

        model = self.detector.model
        X = np.asarray(apply_steps(self.steps[done:], typed), dtype=np.float32)
        if self.leaves is not None and len(X) <= MAX_LOOKUP_ROWS:
            proba = self.leaves.proba(X)  # equal to model_proba's, faster
        else:
            proba = model_proba(model, X)
        return expand_proba(proba, model.classes_, len(self.classes))

    @property
    def classes(self) -> tuple[str, ...]:
        return self.detector.classes


@dataclass
class ChampionSet:
    """The champions loaded from one version of the pointer file."""

    version: str
    champions: dict[tuple[str, str], Champion] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # Per dataset: leading preprocessing steps its two champions share.
    shared_steps: dict[str, int] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)

    def tags(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for (dataset, task), entry in sorted(self.champions.items()):
            out.setdefault(dataset, {})[task] = entry.tag
        return out


def load_champion_set(
    previous: ChampionSet | None = None, model_jobs: int | None = None
) -> ChampionSet:
    """Load every promoted champion; detectors whose tag is unchanged are reused.

    ``model_jobs`` sets ``n_jobs`` of the models that have one (random forest,
    KNN); predictions do not change.
    """
    from ids.detector import Detector

    version = registry.pointer_version()
    loaded = ChampionSet(version)
    old = previous.champions if previous else {}
    for key, pointer in sorted(registry.read_champions().items()):
        dataset, _, task = key.partition("/")
        if dataset not in CATALOG or task not in TASKS:
            continue
        if (dataset, task) in old and old[(dataset, task)].tag == pointer["tag"]:
            loaded.champions[(dataset, task)] = old[(dataset, task)]
            continue
        try:
            detector = Detector.load(pointer["path"])
            if model_jobs is not None and "n_jobs" in detector.model.get_params():
                detector.model.set_params(n_jobs=model_jobs)
        except Exception as exc:  # a broken champion must not take the others down
            logger.exception("cannot load champion %s of %s", pointer["tag"], key)
            loaded.errors[key] = f"{type(exc).__name__}: {exc}"
            if (dataset, task) in old:
                loaded.champions[(dataset, task)] = old[(dataset, task)]
            continue
        loaded.champions[(dataset, task)] = Champion(pointer["tag"], detector)
        logger.info("loaded champion %s for %s", pointer["tag"], key)
    for dataset in {d for d, _ in loaded.champions}:
        pair = [loaded.champions.get((dataset, t)) for t in ("binary", "multiclass")]
        if None not in pair:
            loaded.shared_steps[dataset] = shared_steps(*pair)
    return loaded


def shared_steps(first: Champion, second: Champion) -> int:
    """How many leading preprocessing steps two champions have fitted alike.

    A dataset's binary and multi-class champions are fitted on the same
    training rows, so their chains agree up to the resampling (whose output
    the scaler is fitted on); a request runs the common part once.
    """
    import joblib

    count = 0
    for a, b in zip(first.steps[:-1], second.steps[:-1], strict=False):
        if type(a) is not type(b) or joblib.hash(a) != joblib.hash(b):
            break
        count += 1
    return count


class Scorer:
    """Holds the current champion set, swaps in new ones, scores and logs requests.

    A request takes the set once and uses only it, so a reload (a new set built
    aside, then one reference assignment) never changes models mid-request.
    """

    def __init__(
        self, *, log: bool = True, log_root=None, model_jobs: int | None = None
    ):
        from ids.inference_log import LogWriter

        self.log = LogWriter(log_root) if log else None
        self.model_jobs = model_jobs
        self._lock = threading.Lock()
        self._set = load_champion_set(model_jobs=model_jobs)
        self._stop = threading.Event()

    @property
    def champions(self) -> ChampionSet:
        return self._set

    def reload(self, force: bool = False) -> bool:
        """Load the champions again if the pointer file changed; True if swapped."""
        with self._lock:
            if not force and registry.pointer_version() == self._set.version:
                return False
            before = self._set.tags()
            self._set = load_champion_set(self._set, self.model_jobs)
        logger.info("champions reloaded: %s -> %s", before, self._set.tags())
        return True

    def watch(self, interval_s: float) -> threading.Thread:
        """Check the pointer file every ``interval_s`` seconds in a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.reload()
                except Exception:  # keep watching; the old set keeps serving
                    logger.exception("champion reload failed; serving the old set")

        thread = threading.Thread(target=loop, name="champion-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop watching and turn the open log segments into Parquet."""
        self._stop.set()
        if self.log is not None:
            self.log.close()

    def status(self) -> dict:
        """What is loaded: tags per dataset and task, pointer version, errors."""
        current = self._set
        return {
            "champions": current.tags(),
            "pointer_version": current.version,
            "loaded_at": current.loaded_at,
            "errors": current.errors,
        }

    def score(self, dataset, records) -> dict:
        """Score raw records of ``dataset`` with both champions and log them.

        Raises:
            ScoringError: Bad request (400), too many records (413), or no
                champion for the dataset yet (404).
        """
        current = self._set
        spec = check_request(dataset, records)
        binary = current.champions.get((dataset, "binary"))
        multiclass = current.champions.get((dataset, "multiclass"))
        if binary is None and multiclass is None:
            raise ScoringError(
                f"no champion for dataset {dataset!r} yet (binary or multiclass); "
                f"train and promote one first. Served now: "
                f"{sorted(current.tags()) or 'none'}",
                status=404,
            )

        rows = len(records)
        shared = current.shared_steps.get(dataset, 0)
        typed, proba = _score_all(spec, records, [binary, multiclass], shared)
        result = _predictions(binary, multiclass, proba, rows)
        if self.log is not None:
            _log_batch(self.log, dataset, spec, typed, result, binary, multiclass)
        return result["response"]


def _score_all(spec, records, champions, shared: int = 0) -> tuple[object, list]:
    if spec.members:
        check_members(spec, records)
        # The merged set's columns depend on each record's device: the loader's
        # normaliser fills in what a device lacks, as it did for training.
        loaded = next(c for c in champions if c is not None)
        try:
            frame = loaded.detector.prepare(pd.DataFrame.from_records(records))
        except RecordError as exc:
            raise ScoringError(str(exc)) from exc
        typed = frame_columns(frame)
    else:
        typed = typed_columns(records, spec)
    if not shared:
        return typed, [c and c.proba(typed) for c in champions]
    common = apply_steps(champions[0].steps[:shared], typed)
    return typed, [c.proba(common, done=shared) for c in champions]


def _predictions(binary, multiclass, proba, rows: int) -> dict:
    is_attack = attack_p = kinds = kind_p = disagree = None
    if binary is not None:
        attack_p = proba[0][:, binary.classes.index("attack")]
        is_attack = np.argmax(proba[0], axis=1) == binary.classes.index("attack")
    if multiclass is not None:
        best = np.argmax(proba[1], axis=1)
        kinds = np.asarray(multiclass.classes, dtype=object)[best]
        kind_p = proba[1][np.arange(rows), best]
    if is_attack is not None and kinds is not None:
        disagree = is_attack != (kinds != "normal")

    columns = {
        "is_attack": is_attack,
        "attack_probability": attack_p,
        "attack_type": kinds,
        "attack_type_probability": kind_p,
        "disagree": disagree,
    }
    nothing = [None] * rows
    listed = [
        columns[k].tolist() if columns[k] is not None else nothing
        for k in ("is_attack", "attack_probability", "attack_type", "disagree")
    ]
    if multiclass is not None:
        names = multiclass.classes
        class_rows = [dict(zip(names, row, strict=True)) for row in proba[1].tolist()]
    else:
        class_rows = nothing
    predictions = [
        {
            "is_attack": attack,
            "attack_probability": p_attack,
            "attack_type": kind,
            "probabilities": probabilities,
            "disagree": differs,
        }
        for attack, p_attack, kind, differs, probabilities in zip(
            *listed, class_rows, strict=True
        )
    ]
    models = {
        "binary": binary.tag if binary else None,
        "multiclass": multiclass.tag if multiclass else None,
    }
    response = {"count": rows, "models": models, "predictions": predictions}
    return {"response": response, "columns": columns}


@functools.cache
def _log_columns(dataset: str) -> tuple[str, ...]:
    return tuple(input_columns(get_spec(dataset)))


def _log_batch(writer, dataset, spec, typed, result, binary, multiclass) -> None:
    rows = result["response"]["count"]
    fields = {c: typed[c] for c in _log_columns(spec.name) if c in typed}
    for name, values in result["columns"].items():
        fields[name] = values if values is not None else [None] * rows
    fields["binary_model"] = [binary.tag if binary else None] * rows
    fields["multiclass_model"] = [multiclass.tag if multiclass else None] * rows
    try:
        writer.write(dataset, fields)
    except OSError as exc:
        raise ScoringError(
            f"inference log not writable ({exc}); records are not scored unless "
            "logged. Free disk space or fix $IDS_INFERENCE_LOG",
            status=503,
        ) from exc
